package devstack

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/witness"
)

// WitnessInProcess runs the stack's witness in the stack's process (the
// tests); any other Config.Witness is the path of a lethe-witness binary,
// run as a process of its own, as a customer or an authority would run
// theirs (make run).
const WitnessInProcess = "in-process"

// witnessName is the stack's witness's key name.
const witnessName = "witness.lethe.localhost/demo"

// startWitness starts the stack's witness, which witnesses the log of the
// orchestrator whose key is signer, in <data>/witness, and returns it as
// the orchestrator is configured with it.
func (s *Stack) startWitness(ctx context.Context, signer *proof.Signer) (orchestrator.Witness, error) {
	origin := s.cfg.Orchestrator.LogOrigin
	if origin == "" {
		origin = engine.DefaultLogOrigin
	}
	logKey, err := proof.NoteVerifierKey(origin, signer.Key.Public)
	if err != nil {
		return orchestrator.Witness{}, err
	}
	dir := filepath.Join(s.cfg.DataDir, "witness")
	listen := s.cfg.WitnessListen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	var addr string
	if s.cfg.Witness == WitnessInProcess {
		ready := make(chan net.Addr, 1)
		opts := witness.Options{Config: witness.Config{Dir: dir, Name: witnessName, Logs: []witness.LogKey{{Origin: origin, VKey: logKey}},
			Logger: s.cfg.Logger.With("service", "witness")}, Listen: listen, Ready: func(a net.Addr) { ready <- a }}
		s.run("witness", func(ctx context.Context) error { return witness.Run(ctx, opts) })
		select {
		case a := <-ready:
			addr = a.String()
		case <-time.After(10 * time.Second):
			return orchestrator.Witness{}, fmt.Errorf("witness: not listening after 10s")
		}
	} else {
		if strings.HasSuffix(listen, ":0") {
			return orchestrator.Witness{}, fmt.Errorf("witness: a witness process needs a fixed --witness-listen address")
		}
		cmd := exec.CommandContext(s.ctx, s.cfg.Witness, "--state", dir, "--listen", listen, "--name", witnessName, "--log", origin+"="+logKey)
		cmd.Stderr = os.Stderr
		// Stopped as an operator stops it: SIGTERM, so that a request
		// under way finishes and its state is saved.
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 10 * time.Second
		if err := cmd.Start(); err != nil {
			return orchestrator.Witness{}, fmt.Errorf("witness: %w", err)
		}
		s.run("witness", func(context.Context) error {
			if err := cmd.Wait(); err != nil && s.ctx.Err() == nil {
				return err
			}
			return nil
		})
		if err := waitListening(ctx, listen, 10*time.Second); err != nil {
			return orchestrator.Witness{}, fmt.Errorf("witness: %w", err)
		}
		addr = listen
	}
	vkey, err := os.ReadFile(filepath.Join(dir, witness.VKeyFile))
	if err != nil {
		return orchestrator.Witness{}, fmt.Errorf("witness: %w", err)
	}
	s.Witness = "http://" + addr
	return orchestrator.Witness{Name: "local", URL: s.Witness, VerifierKey: strings.TrimSpace(string(vkey))}, nil
}

// waitListening waits until addr accepts connections.
func waitListening(ctx context.Context, addr string, d time.Duration) error {
	end := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return fmt.Errorf("not listening on %s after %v: %w", addr, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

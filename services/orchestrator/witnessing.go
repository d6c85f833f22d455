package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/witness"
)

// Witness is a witness the orchestrator sends its checkpoints to (C2SP
// tlog-witness): Name labels it in metrics and logs, URL is where it
// takes them, VerifierKey its cosignature key (vkey).
type Witness struct {
	Name, URL, VerifierKey string
}

// ParseWitness reads NAME=URL+VERIFIER_KEY (the --witness flag).
func ParseWitness(s string) (Witness, error) {
	name, rest, ok := strings.Cut(s, "=")
	u, vkey, ok2 := strings.Cut(rest, "+")
	if !ok || !ok2 || name == "" || !strings.HasPrefix(u, "http") || vkey == "" {
		return Witness{}, fmt.Errorf("witness %q: want NAME=URL+VERIFIER_KEY, such as w1=http://127.0.0.1:8095+witness.example/w1+1a2b3c4d+BA...", s)
	}
	if _, err := witness.NewVerifier(vkey); err != nil {
		return Witness{}, fmt.Errorf("witness %s: %w", name, err)
	}
	return Witness{Name: name, URL: u, VerifierKey: vkey}, nil
}

// witnessTimeout bounds one witness's answer: one that does not answer
// must not hold up the others.
const witnessTimeout = 10 * time.Second

// cosigner is one configured witness, and the size of the checkpoint it
// last cosigned as far as this replica knows (a 409 tells it otherwise).
type cosigner struct {
	name   string
	client *witness.Client
	size   int64
	// refusing is why it last refused ("" once it cosigns): a refusal is
	// logged when it starts, not at every tick.
	refusing string
}

// witness sends each new checkpoint of the log, with a consistency proof
// from the one each witness last cosigned, to every witness; once
// WitnessQuorum of them cosigned one, it keeps it with their
// cosignatures (GET /log/checkpoint serves it) and issues the
// certificates that waited for it. A witness that refuses the checkpoint
// as inconsistent with what it cosigned before saw the log's history
// rewritten: that is counted (LetheWitnessRefusedCheckpoint pages).
func (o *Orchestrator) witness(ctx context.Context) error {
	if len(o.cfg.Witnesses) == 0 {
		return nil
	}
	var cosigners []*cosigner
	for _, w := range o.cfg.Witnesses {
		v, err := witness.NewVerifier(w.VerifierKey)
		if err != nil {
			return fmt.Errorf("witness %s: %w", w.Name, err)
		}
		hc := o.cfg.HTTPClient
		if hc == http.DefaultClient {
			hc = &http.Client{Timeout: witnessTimeout}
		}
		cosigners = append(cosigners, &cosigner{name: w.Name, client: &witness.Client{URL: w.URL, Verifier: v, HTTPClient: hc}})
		for _, reason := range witnessRefusals {
			o.m.WitnessRefusals.WithLabelValues(w.Name, reason)
		}
		o.m.WitnessCosignatures.WithLabelValues(w.Name)
	}
	tick := time.NewTicker(o.cfg.ScanInterval)
	defer tick.Stop()
	witnessed := int64(-1)
	said := lapse{log: o.log, failed: "checkpoint not witnessed", recovered: "checkpoint witnessed again"}
	for {
		size, err := o.witnessOnce(ctx, cosigners, witnessed)
		said.round(ctx, err, "size", size)
		if err == nil {
			witnessed = size
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// witnessOnce has a checkpoint of the log as it is cosigned, unless the
// log has not grown since the last one witnessed, and returns its size.
func (o *Orchestrator) witnessOnce(ctx context.Context, cosigners []*cosigner, witnessed int64) (int64, error) {
	// Nothing to sign while the log has not grown: most ticks.
	if size, err := o.engine.LogSize(ctx); err != nil || size == witnessed {
		return size, err
	}
	size, note, err := o.engine.SignedCheckpoint(ctx)
	if err != nil {
		return size, err
	}
	lines := make([][]byte, len(cosigners))
	var wg sync.WaitGroup
	for i, c := range cosigners {
		wg.Go(func() { lines[i] = o.cosign(ctx, c, size, note) })
	}
	wg.Wait()
	cosigned := note
	n := 0
	for _, l := range lines {
		if l != nil {
			cosigned = append(cosigned, l...)
			n++
		}
	}
	if n < o.cfg.WitnessQuorum {
		return size, fmt.Errorf("%d of %d witnesses cosigned the checkpoint of size %d, %d needed", n, len(cosigners), size, o.cfg.WitnessQuorum)
	}
	issued, err := o.engine.IssueWitnessed(ctx, size, cosigned)
	if err != nil {
		return size, err
	}
	o.m.CheckpointWitnessed.SetToCurrentTime()
	if issued > 0 {
		o.log.Info("certificates issued on a witnessed checkpoint", "size", size, "cosignatures", n, "certificates", issued)
	}
	return size, nil
}

// witnessRefusals are the reasons of lethe_orchestrator_witness_refusals_total.
var witnessRefusals = []string{"inconsistent", "unknown_log", "log_signature", "refused", "unreachable"}

// cosign asks one witness to cosign the checkpoint of size, with a
// consistency proof from the size it last cosigned, and returns its
// cosignature line, or nil (counted, and logged) when it gave none. A
// witness that last cosigned another size than this replica thought (409)
// is asked again with a proof from that size.
func (o *Orchestrator) cosign(ctx context.Context, c *cosigner, size int64, note []byte) []byte {
	for try := 0; ; try++ {
		var p tlog.TreeProof
		if c.size > 0 && c.size < size {
			var err error
			if p, err = o.engine.Consistency(ctx, c.size, size); err != nil {
				o.log.Error("consistency proof for a witness", "witness", c.name, "from", c.size, "to", size, "err", err)
				return nil
			}
		}
		line, err := c.client.AddCheckpoint(ctx, c.size, p, note)
		var conflict *witness.ConflictError
		if errors.As(err, &conflict) && try == 0 && conflict.Size <= size {
			c.size = conflict.Size
			continue
		}
		if err == nil {
			c.size, c.refusing = size, ""
			o.m.WitnessCosignatures.WithLabelValues(c.name).Inc()
			return line
		}
		reason := "refused"
		switch {
		case errors.Is(err, witness.ErrInconsistent) || (conflict != nil && conflict.Size > size):
			// It cosigned a larger or different log than this one: the
			// history it saw was rewritten.
			reason = "inconsistent"
			o.log.Error("a witness refused the log's checkpoint as inconsistent with the history it cosigned", "witness", c.name, "size", size, "err", err)
		case errors.Is(err, witness.ErrUnknownLog):
			reason = "unknown_log"
		case errors.Is(err, witness.ErrLogSignature):
			reason = "log_signature"
		case !errors.Is(err, witness.ErrRefused):
			reason = "unreachable"
		}
		if reason != "inconsistent" && reason != c.refusing {
			o.log.Warn("a witness did not cosign the checkpoint", "witness", c.name, "size", size, "reason", reason, "err", err)
		}
		c.refusing = reason
		o.m.WitnessRefusals.WithLabelValues(c.name, reason).Inc()
		return nil
	}
}

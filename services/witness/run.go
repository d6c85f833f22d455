package witness

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/httpserve"
	tlogwitness "github.com/lethe-dev/lethe/pkg/witness"
)

// Defaults of the lethe-witness command.
const (
	DefaultState  = "data/witness"
	DefaultListen = "127.0.0.1:8095"
)

// Options are what [Run] starts a witness server with.
type Options struct {
	Config
	// Listen is the HTTP address ("127.0.0.1:0" picks a port).
	Listen string
	// Out gets the lines a person starting the witness reads: where it
	// listens and its verifier key. Default: io.Discard.
	Out io.Writer
	// Ready, if set, is called with the address once it listens.
	Ready func(addr net.Addr)
}

// Run serves a witness until ctx is done, then shuts down gracefully:
// requests under way finish (and their state is saved) before the state
// directory is freed.
func Run(ctx context.Context, opts Options) error {
	w, err := New(opts.Config)
	if err != nil {
		return err
	}
	defer w.Close()
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("witness: %w", err)
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	fmt.Fprintf(out, "lethe-witness listening on http://%s%s\n", ln.Addr(), tlogwitness.AddCheckpointPath)
	fmt.Fprintf(out, "verifier key (also in %s/%s):\n%s\n", opts.Dir, VKeyFile, w.VerifierKey())
	srv := &http.Server{Handler: w, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(w.log.Handler(), slog.LevelWarn)}
	done := make(chan error, 1)
	go func() { done <- httpserve.Serve(ctx, srv, ln, "", "", 10*time.Second) }()
	w.log.Info("witness started", "addr", ln.Addr().String(), "logs", len(w.logs))
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}
	if err := <-done; err != nil {
		return fmt.Errorf("witness: %w", err)
	}
	w.log.Info("witness stopped")
	return nil
}

// Main is the lethe-witness command: it parses args into fs, runs the
// witness until ctx is done and returns the exit code.
func Main(ctx context.Context, fs *flag.FlagSet, args []string, out, errOut io.Writer) int {
	fs.SetOutput(errOut)
	var opts Options
	fs.StringVar(&opts.Dir, "state", DefaultState, "state directory: the witness's key (witness.key, made at the first start), its verifier key (witness.vkey) and per log the latest checkpoint cosigned")
	fs.StringVar(&opts.Listen, "listen", DefaultListen, "HTTP address of POST /add-checkpoint")
	fs.StringVar(&opts.Name, "name", "", "the witness's key name, a schema-less URL such as witness.example.org/lethe (required)")
	fs.Func("log", "ORIGIN=VKEY: a log to witness, by its checkpoints' origin line and its note verifier key (repeatable; twice for one origin adds a key)", func(s string) error {
		lk, err := ParseLogKey(s)
		opts.Logs = append(opts.Logs, lk)
		return err
	})
	fs.Func("log-file", "file of ORIGIN=VKEY lines (blank lines and # comments ignored), as --log", func(path string) error {
		lks, err := readLogFile(path)
		opts.Logs = append(opts.Logs, lks...)
		return err
	})
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(errOut, "lethe-witness: bad --log-level: %v\n", err)
		return 2
	}
	if opts.Name == "" || len(opts.Logs) == 0 {
		fmt.Fprintln(errOut, "lethe-witness: --name and at least one --log (or --log-file) are required")
		fs.Usage()
		return 2
	}
	opts.Logger = slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: lvl})).With("service", "witness")
	opts.Out = out
	if err := Run(ctx, opts); err != nil {
		opts.Logger.Error("witness failed", "error", err)
		return 1
	}
	return 0
}

// readLogFile reads ORIGIN=VKEY lines.
func readLogFile(path string) ([]LogKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lks []LogKey
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lk, err := ParseLogKey(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		lks = append(lks, lk)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lks) == 0 {
		return nil, errors.New(path + ": no log")
	}
	return lks, nil
}

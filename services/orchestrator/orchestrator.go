// Package orchestrator takes data-subject requests, fans one task per
// registered system out over the bus through a transactional outbox, records
// the systems' receipts, retries silent or failing systems with backoff and
// dead-letters them after a number of attempts.
package orchestrator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// DefaultSystems are the five systems of the reference deployment.
var DefaultSystems = []string{"accounts", "billing", "emailanalytics", "recordings", "subprocessors"}

// Config configures an orchestrator.
type Config struct {
	// Listen is the HTTP API's address; port 0 picks a free one.
	Listen string
	// DataDir holds the SQLite store when Store is nil.
	DataDir string
	Store   store.Store
	Bus     bus.Bus
	// Systems are the registered systems: a request is done when every one
	// of them has answered.
	Systems []string
	// MaxAttempts is the number of attempts a task gets before it is
	// dead-lettered.
	MaxAttempts int
	// RetryInitial is the first wait for an answer; each further attempt
	// waits longer (exponential backoff) up to RetryMax.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// ScanInterval is how often due retries are looked for.
	ScanInterval time.Duration
	// Objective is how soon a request should be fulfilled, for the SLO
	// metric lethe_orchestrator_requests_ended_total{result}. Default 7 days.
	Objective time.Duration
	// Deadlines are the tenants' deadline policies (time zone, roll to
	// working days); nil counts every deadline in UTC without rolling.
	Deadlines *deadline.Tenants
	// NoticeWebhook, if set, receives every notice to a data subject (the
	// extension notice) as a signed JSON POST, besides the bus.
	NoticeWebhook string
	// HTTPClient posts to the webhook; default http.DefaultClient (each
	// POST has its own 10 s timeout).
	HTTPClient *http.Client
	// HashKey keys the hash that replaces subject identifiers once a
	// request has ended.
	HashKey []byte
	// Signer is the orchestrator's key (tree heads, certificates); nil
	// loads or creates DataDir/signing.key.
	Signer *proof.Signer
	// KeysFile lists the connectors' public keys (see proof.KeySet); it is
	// read again when it changes. Default DataDir/keys.json.
	KeysFile   string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

var systemName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if len(c.Systems) == 0 {
		c.Systems = DefaultSystems
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 6
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = 30 * time.Second
	}
	if c.RetryMax == 0 {
		c.RetryMax = 30 * time.Minute
	}
	if c.ScanInterval == 0 {
		c.ScanInterval = time.Second
	}
	if c.Objective == 0 {
		c.Objective = 7 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.KeysFile == "" {
		c.KeysFile = filepath.Join(c.DataDir, "keys.json")
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Bus == nil {
		return errors.New("orchestrator: no bus")
	}
	if len(c.HashKey) < 16 {
		return errors.New("orchestrator: hash key shorter than 16 bytes")
	}
	if c.MaxAttempts < 1 {
		return errors.New("orchestrator: max attempts must be at least 1")
	}
	for _, s := range c.Systems {
		if !systemName.MatchString(s) {
			return fmt.Errorf("orchestrator: bad system name %q", s)
		}
	}
	if c.NoticeWebhook != "" {
		u, err := url.Parse(c.NoticeWebhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("orchestrator: the notice webhook must be an http:// or https:// URL")
		}
	}
	return nil
}

// Orchestrator is one running orchestrator.
type Orchestrator struct {
	cfg     Config
	store   store.Store
	ownsDB  bool
	log     *slog.Logger
	m       *metrics
	ln      net.Listener
	relayUp chan struct{} // wakes the relay after a commit that enqueued
	// noticeUp wakes the notifier after a commit that wrote a notice.
	noticeUp   chan struct{}
	httpClient *http.Client
	signer     *proof.Signer
	keys       *registry
	id         string // names this replica's outbox leases
}

// New opens the store and the API's listener. Run starts the work.
func New(cfg Config) (*Orchestrator, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Systems = slices.Sorted(slices.Values(cfg.Systems))
	o := &Orchestrator{cfg: cfg, store: cfg.Store, log: cfg.Logger, relayUp: make(chan struct{}, 1), noticeUp: make(chan struct{}, 1), httpClient: cfg.HTTPClient, signer: cfg.Signer, id: replicaID()}
	if o.signer == nil {
		s, err := proof.LoadSigner(filepath.Join(cfg.DataDir, "signing.key"), proof.RoleOrchestrator, cfg.Now())
		if err != nil {
			return nil, err
		}
		o.signer = s
	}
	keys, err := newRegistry(cfg.KeysFile, o.signer.Key, cfg.Logger)
	if err != nil {
		return nil, err
	}
	o.keys = keys
	if o.store == nil {
		s, err := store.OpenSQLite(filepath.Join(cfg.DataDir, "lethe.db"))
		if err != nil {
			return nil, err
		}
		o.store, o.ownsDB = s, true
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		o.Close()
		return nil, fmt.Errorf("orchestrator: listen: %w", err)
	}
	o.ln = ln
	o.m = newMetrics(cfg.Registerer, o.store, cfg.Systems, cfg.Deadlines, cfg.NoticeWebhook != "", cfg.Now)
	return o, nil
}

// Addr is the HTTP API's address.
func (o *Orchestrator) Addr() string { return o.ln.Addr().String() }

// Close releases what New opened; Run closes it too.
func (o *Orchestrator) Close() error {
	if o.ln != nil {
		o.ln.Close()
	}
	if o.ownsDB {
		return o.store.Close()
	}
	return nil
}

// Run serves the API, relays the outbox, delivers notices, consumes
// receipts and account deletions and schedules retries and deferred
// erasures until ctx is cancelled.
func (o *Orchestrator) Run(ctx context.Context) error {
	defer o.Close()
	srv := &http.Server{Handler: o.routes(), ReadHeaderTimeout: 5 * time.Second}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(o.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error { return o.relay(ctx) })
	g.Go(func() error { return o.scan(ctx) })
	g.Go(func() error { return o.notify(ctx) })
	g.Go(func() error { return o.consumeReceipts(ctx) })
	g.Go(func() error { return o.consumeAccountDeletions(ctx) })
	o.log.Info("orchestrator running", "listen", o.Addr(), "systems", o.cfg.Systems)
	err := g.Wait()
	o.log.Info("orchestrator stopped")
	return err
}

// wakeRelay tells the relay there is something to publish.
func (o *Orchestrator) wakeRelay() {
	select {
	case o.relayUp <- struct{}{}:
	default:
	}
}

// replicaID names this orchestrator process among replicas sharing a store.
func replicaID() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%x", host, os.Getpid(), b)
}

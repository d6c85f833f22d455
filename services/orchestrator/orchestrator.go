// Package orchestrator is Lethe's orchestrator as one service: the HTTP
// API (package httpapi) over the request lifecycle (package engine), the
// relay that publishes the lifecycle's outbox to the bus, the notifier
// that delivers notices to data subjects, the consumers of receipts and
// account deletions, and the schedule of retries and deferred erasures.
//
// [New] takes its parts ready (store, bus, signer, keys, listener); the
// app package opens them from flags.
package orchestrator

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/httpserve"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/console"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/httpapi"
	"github.com/lethe-dev/lethe/services/orchestrator/metrics"
	"github.com/lethe-dev/lethe/services/orchestrator/outbox"
	"github.com/lethe-dev/lethe/services/orchestrator/retention"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// DefaultSystems are the five systems of the reference deployment.
var DefaultSystems = []string{"accounts", "billing", "emailanalytics", "recordings", "subprocessors"}

// Config configures an orchestrator. Its parts come ready: New opens
// nothing.
type Config struct {
	// Listener is where the HTTP API is served; Run closes it.
	Listener net.Listener
	Store    store.Store
	Bus      bus.Bus
	// Signer is the orchestrator's key (tree heads, certificates, notices,
	// tasks); SealKey opens the exports connectors seal to it.
	Signer  *proof.Signer
	SealKey *proof.SealKey
	// Keys lists the public keys that may sign receipts (a keyring.Ring
	// re-reads its file when it changes).
	Keys engine.KeySource
	// Systems are the registered systems: a request is done when every one
	// of them has answered.
	Systems []string
	// Policies are the retention policies; each runs every SweepInterval
	// (negative: only on demand).
	Policies      *retention.Policies
	SweepInterval time.Duration
	// MaxAttempts is the number of attempts a task gets before it is
	// dead-lettered.
	MaxAttempts int
	// ReapplyChunk is the most keyed hashes one re-application task
	// carries (0: engine.DefaultReapplyChunk).
	ReapplyChunk int
	// RetryInitial is the first wait for an answer; each further attempt
	// waits longer (exponential backoff) up to RetryMax.
	RetryInitial time.Duration
	RetryMax     time.Duration
	// ScanInterval is how often due retries are looked for.
	ScanInterval time.Duration
	// Objective is how soon a request should be fulfilled, for the SLO
	// metric lethe_orchestrator_requests_ended_total{result}.
	Objective time.Duration
	// Witnesses cosign the log's checkpoints (C2SP tlog-witness): with
	// any, a certificate is issued only on a checkpoint that at least
	// WitnessQuorum of them cosigned (default: 1).
	Witnesses     []Witness
	WitnessQuorum int
	// LogOrigin names the transparency log in its checkpoints (the C2SP
	// tlog-checkpoint origin line, and the key name of their signature):
	// a host and path the operator owns, so that checkpoints of two
	// deployments are never confused.
	LogOrigin string
	// ExportExpiry is how long an export waits to be collected after its
	// request ended; then its key is destroyed and its blobs deleted.
	ExportExpiry time.Duration
	// Blobs holds the exports connectors write, encrypted (pkg/blob).
	Blobs blob.Store
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
	// OIDC, if set, takes ID tokens of the organisation's identity
	// provider besides the API's own tokens.
	OIDC *auth.OIDC
	// ConsoleOIDC, if set, signs people in to the console (/console/)
	// through the identity provider (authorization code with PKCE); the
	// console takes API tokens either way. ConsoleIdle and
	// ConsoleLifetime end its sessions (console defaults when zero).
	ConsoleOIDC                  *console.OIDCClient
	ConsoleIdle, ConsoleLifetime time.Duration
	// AllowedOrigins are the browser origins whose calls the API takes
	// (none by default).
	AllowedOrigins []string
	// RateLimit is the calls per second a caller may make (bursts of
	// twice that); negative: no limit.
	RateLimit float64
	// ReadTimeout bounds the reading of a call, its body included: a body
	// that never finishes does not hold a connection.
	ReadTimeout time.Duration
	// MetricsListener, if set, serves /metrics instead of the API's
	// listener; MetricsCache is how long a scrape's reading of the store
	// serves the next scrapes (negative: none).
	MetricsListener net.Listener
	MetricsCache    time.Duration
	// TLSCert and TLSKey, if set, serve the API over TLS.
	TLSCert, TLSKey string
	Logger          *slog.Logger
	Registerer      prometheus.Registerer
	Now             func() time.Time
}

// Defaults are the defaults of the settings an operator tunes: the one
// place they are written (the binary's flags show them).
func Defaults() Config {
	return Config{
		Systems:       DefaultSystems,
		MaxAttempts:   6,
		RetryInitial:  30 * time.Second,
		RetryMax:      30 * time.Minute,
		ScanInterval:  time.Second,
		Objective:     7 * 24 * time.Hour,
		ExportExpiry:  7 * 24 * time.Hour,
		SweepInterval: 24 * time.Hour,
		LogOrigin:     engine.DefaultLogOrigin,
		RateLimit:     20,
		ReadTimeout:   15 * time.Second,
		MetricsCache:  5 * time.Second,
	}
}

func (c *Config) setDefaults() {
	d := Defaults()
	if len(c.Systems) == 0 {
		c.Systems = d.Systems
	}
	c.MaxAttempts = cmp.Or(c.MaxAttempts, d.MaxAttempts)
	c.RetryInitial = cmp.Or(c.RetryInitial, d.RetryInitial)
	c.RetryMax = cmp.Or(c.RetryMax, d.RetryMax)
	c.ScanInterval = cmp.Or(c.ScanInterval, d.ScanInterval)
	c.Objective = cmp.Or(c.Objective, d.Objective)
	c.RateLimit = cmp.Or(c.RateLimit, d.RateLimit)
	c.ExportExpiry = cmp.Or(c.ExportExpiry, d.ExportExpiry)
	c.SweepInterval = cmp.Or(c.SweepInterval, d.SweepInterval)
	c.LogOrigin = cmp.Or(c.LogOrigin, d.LogOrigin)
	if len(c.Witnesses) > 0 {
		c.WitnessQuorum = cmp.Or(c.WitnessQuorum, 1)
	}
	c.ReadTimeout = cmp.Or(c.ReadTimeout, d.ReadTimeout)
	c.MetricsCache = cmp.Or(c.MetricsCache, d.MetricsCache)
	if c.Logger == nil {
		c.Logger = slog.Default()
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

var systemName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Listener == nil:
		return errors.New("orchestrator: no listener")
	case c.Store == nil:
		return errors.New("orchestrator: no store")
	case c.Bus == nil:
		return errors.New("orchestrator: no bus")
	case c.Signer == nil:
		return errors.New("orchestrator: no signing key")
	case c.SealKey == nil:
		return errors.New("orchestrator: no sealing key")
	case c.Keys == nil:
		return errors.New("orchestrator: no keys")
	case len(c.HashKey) < 16:
		return errors.New("orchestrator: hash key shorter than 16 bytes")
	case c.MaxAttempts < 1:
		return errors.New("orchestrator: max attempts must be at least 1")
	}
	if len(c.Witnesses) > 0 && (c.WitnessQuorum < 1 || c.WitnessQuorum > len(c.Witnesses)) {
		return fmt.Errorf("orchestrator: --witness-quorum %d: want 1 to the %d witnesses configured", c.WitnessQuorum, len(c.Witnesses))
	}
	if c.LogOrigin != "" {
		if err := proof.CheckOrigin(c.LogOrigin); err != nil {
			return fmt.Errorf("orchestrator: --log-origin: %w", err)
		}
	}
	for _, s := range c.Systems {
		if !systemName.MatchString(s) {
			return fmt.Errorf("orchestrator: bad system name %q", s)
		}
	}
	if c.Policies != nil {
		if err := c.Policies.Check(c.Systems); err != nil {
			return fmt.Errorf("orchestrator: %w", err)
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
	cfg    Config
	engine *engine.Engine
	api    *httpapi.API
	m      *metrics.Metrics
	log    *slog.Logger
	// relayUp and noticeUp wake the relay and the notifier after a commit
	// that gave them work.
	relayUp, noticeUp outbox.Signal
	// forgot wakes the scrubber after identifiers were dropped.
	forgot outbox.Signal
	// certifyUp wakes the certifier after a commit that left a
	// certificate to issue.
	certifyUp outbox.Signal
	id        string // names this replica's outbox leases
}

// New assembles an orchestrator from ready parts. Run starts the work.
func New(cfg Config) (*Orchestrator, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Systems = slices.Sorted(slices.Values(cfg.Systems))
	channels := []string{proof.ChannelBus}
	if cfg.NoticeWebhook != "" {
		channels = append(channels, proof.ChannelWebhook)
	}
	o := &Orchestrator{cfg: cfg, log: cfg.Logger, relayUp: outbox.NewSignal(), noticeUp: outbox.NewSignal(), forgot: outbox.NewSignal(), certifyUp: outbox.NewSignal(), id: replicaID()}
	o.m = metrics.New(cfg.Registerer, cfg.Store, cfg.Systems, cfg.Deadlines, channels, cfg.Now, cfg.MetricsCache)
	o.engine = engine.New(engine.Config{
		Store: cfg.Store, Systems: cfg.Systems, MaxAttempts: cfg.MaxAttempts, ReapplyChunk: cfg.ReapplyChunk, LogOrigin: cfg.LogOrigin, Witnessed: len(cfg.Witnesses) > 0, RetryInitial: cfg.RetryInitial, RetryMax: cfg.RetryMax,
		Objective: cfg.Objective, Deadlines: cfg.Deadlines, NoticeChannels: channels, HashKey: cfg.HashKey,
		Signer: cfg.Signer, SealKey: cfg.SealKey, Blobs: cfg.Blobs, Policies: cfg.Policies, ExportExpiry: cfg.ExportExpiry, Keys: cfg.Keys, Relay: o.relayUp, Notifier: o.noticeUp, Forgot: o.forgot, Certifier: o.certifyUp, Metrics: o.m, Logger: cfg.Logger, Now: cfg.Now,
	})
	tokens := &auth.Tokens{Store: cfg.Store, Now: cfg.Now}
	chain := auth.Chain{Tokens: tokens}
	if cfg.OIDC != nil {
		chain.OIDC = cfg.OIDC
	}
	con, err := console.New(console.Config{Life: o.engine, Store: cfg.Store, Auth: chain, Tokens: tokens, Metrics: o.m,
		Systems: cfg.Systems, Channels: channels, Deadlines: cfg.Deadlines, HashKey: cfg.HashKey, OIDC: cfg.ConsoleOIDC,
		IdleTimeout: cfg.ConsoleIdle, Lifetime: cfg.ConsoleLifetime, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	o.api = httpapi.New(o.engine, cfg.Store, o.m, cfg.Logger, httpapi.Options{Auth: chain, Tokens: tokens, Policies: cfg.Policies,
		AllowedOrigins: cfg.AllowedOrigins, RateLimit: max(cfg.RateLimit, 0), Metrics: cfg.MetricsListener == nil,
		Console: con.Handler()})
	return o, nil
}

// Addr is the HTTP API's address.
func (o *Orchestrator) Addr() string { return o.cfg.Listener.Addr().String() }

// stopGrace bounds how long a stop waits for the API's requests under way.
const stopGrace = 5 * time.Second

// Run serves the API, relays the outbox, delivers notices, consumes
// receipts and account deletions and schedules retries and deferred
// erasures until ctx is cancelled.
func (o *Orchestrator) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	// The API's server bounds what a client can hold: headers, a body
	// that never finishes, a connection left idle. A download's handler
	// has its own, longer deadline, within WriteTimeout (an export bundle
	// of recordings is the longest).
	api := &http.Server{Handler: o.api.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: o.cfg.ReadTimeout,
		WriteTimeout: httpapi.ExportTimeout + 30*time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	g.Go(func() error { return httpserve.Serve(ctx, api, o.cfg.Listener, o.cfg.TLSCert, o.cfg.TLSKey, stopGrace) })
	if o.cfg.MetricsListener != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", httpapi.MetricsHandler(o.m))
		metrics := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10}
		g.Go(func() error { return httpserve.Serve(ctx, metrics, o.cfg.MetricsListener, "", "", stopGrace) })
	}
	g.Go(func() error { return o.relay().Run(ctx) })
	g.Go(func() error { return o.notifier().Run(ctx) })
	g.Go(func() error { return o.scan(ctx) })
	g.Go(func() error { return o.sweep(ctx) })
	g.Go(func() error { return o.witness(ctx) })
	g.Go(func() error { return o.certify(ctx) })
	g.Go(func() error { return o.scrub(ctx) })
	g.Go(func() error { return o.consumeReceipts(ctx) })
	g.Go(func() error { return o.consumeAccountDeletions(ctx) })
	g.Go(func() error { return o.consumeAcknowledgements(ctx) })
	o.log.Info("orchestrator running", "listen", o.Addr(), "systems", o.cfg.Systems)
	err := g.Wait()
	o.log.Info("orchestrator stopped")
	return err
}

// certify issues the certificates that wait to be (engine.IssueHeld): as
// soon as the commit that left them is told (certifyUp), in batches of
// what waited meanwhile, and every ScanInterval those another replica or
// this one before a restart left. With witnesses, their checkpoints do.
func (o *Orchestrator) certify(ctx context.Context) error {
	if len(o.cfg.Witnesses) > 0 {
		return nil
	}
	tick := time.NewTicker(o.cfg.ScanInterval)
	defer tick.Stop()
	said := lapse{log: o.log, failed: "certificates not issued", recovered: "certificates issued again"}
	for {
		_, err := o.engine.IssueHeld(ctx, "")
		said.round(ctx, err)
		select {
		case <-ctx.Done():
			return nil
		case <-o.certifyUp:
		case <-tick.C:
		}
	}
}

// lapse says a loop's failure once, when it begins or changes, not at
// every round, and says once that it is over.
type lapse struct {
	log               *slog.Logger
	failed, recovered string // what is said of each
	failing           string // the error said last; "" while none
}

// round tells the outcome of one round; args go with the recovery.
func (l *lapse) round(ctx context.Context, err error, args ...any) {
	switch {
	case err != nil && ctx.Err() == nil && err.Error() != l.failing:
		l.failing = err.Error()
		l.log.Warn(l.failed, "err", err)
	case err == nil && l.failing != "":
		l.failing = ""
		l.log.Info(l.recovered, args...)
	}
}

// scrub truncates the store's write-ahead log after identifiers were
// dropped (at most once a second), so that no copy of them stays in it.
// A store without such a log (PostgreSQL: the server's) has nothing to do.
func (o *Orchestrator) scrub(ctx context.Context) error {
	st, ok := o.cfg.Store.(interface{ Checkpoint(context.Context) error })
	if !ok {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.forgot:
		}
		if err := st.Checkpoint(ctx); err != nil && ctx.Err() == nil {
			o.log.Debug("write-ahead log not truncated yet", "err", err)
			o.forgot.Wake() // try again
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// replicaID names this orchestrator process among replicas sharing a store.
func replicaID() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%x", host, os.Getpid(), b)
}

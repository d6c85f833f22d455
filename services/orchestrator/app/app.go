// Package app opens what the orchestrator runs on (bus, store, keys,
// listener) and runs it: [Run] for a program that has its options
// already (the in-process stack of `make run`), [Main] for the binary,
// which reads them from flags and the environment.
package app

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // tenants' time zones, also where the system has no zoneinfo

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/busurl"
	"github.com/lethe-dev/lethe/pkg/bus/natsauth"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/datadir"
	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/pkg/envflag"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/services/orchestrator"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/console"
	"github.com/lethe-dev/lethe/services/orchestrator/keyring"
	"github.com/lethe-dev/lethe/services/orchestrator/retention"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// ErrConfig marks an error in the options (a bad URL, an unreachable
// engine named by one): the binary exits 2 for it.
var ErrConfig = errors.New("configuration")

// Options say where the orchestrator's parts are. Zero values take the
// defaults of the orchestrator binary's flags.
type Options struct {
	// Listener serves the API; nil listens on Listen.
	Listener net.Listener
	Listen   string
	// DataDir holds the SQLite store (unless StoreURL names another), the
	// hash key, the signing key, the keys file and the embedded NATS
	// server's files.
	DataDir string
	// Bus is a bus already connected (the in-process stack shares one);
	// nil dials BusURL: "embedded" (an in-process NATS server with
	// JetStream, listening on NATSListen), nats://... or kafka://....
	Bus        bus.Bus
	BusURL     string
	NATSListen string
	// NATSUsers is where the embedded NATS server's users are kept: each
	// service's NKey seed in NATSUsers/<service>/nats.seed, made at the
	// first start and read after. The server lets in these users only,
	// each allowed its part (package natsauth). "" is the folder that
	// holds DataDir, so that a connector run with --data <that>/<system>
	// finds its own (DataDir/nats-users if DataDir is at the root).
	NATSUsers string
	// BusTLSCA, BusTLSCert and BusTLSKey are TLS files for an external
	// broker (busurl's tls_ca, tls_cert, tls_key, given apart from the URL).
	BusTLSCA, BusTLSCert, BusTLSKey string
	// StoreURL is sqlite:PATH or postgres://...; "" is SQLite in DataDir.
	StoreURL string
	// BlobsURL is where connectors write exports and the orchestrator
	// reads them (a folder, or s3://bucket; see blob.OpenURL); "" is the
	// folder blobs beside DataDir, where connectors run with --data
	// beside it look too (data/blobs in the local layout).
	BlobsURL string
	// Durability is how far the store and the embedded NATS server take a
	// write before it is acknowledged: durability.Strict (the zero value)
	// syncs each one to the disk (SQLite synchronous=FULL, PostgreSQL
	// synchronous_commit=on, JetStream sync always), durability.Fast leaves
	// it to the engines (NORMAL, off, every 2 minutes). An external NATS
	// server syncs as its own configuration says.
	Durability durability.Mode
	// KeysFile lists the connectors' public keys; "" is DataDir/keys.json.
	KeysFile string
	// AdminTokenFile holds the first admin token: registered when the file
	// exists, created and written there (0600) when it does not and no
	// admin token works; "" is DataDir/admin.token.
	AdminTokenFile string
	// OIDC, when its Issuer is set, lets the organisation's identity
	// provider sign callers in.
	OIDC auth.OIDCConfig
	// ConsoleOIDC, when its ClientID is set (and OIDC's Issuer), signs
	// people in to the console through the identity provider
	// (authorization code with PKCE); its Provider is OIDC.
	ConsoleOIDC console.OIDCClientConfig
	// MetricsListen, if set, serves /metrics there instead of on the API.
	MetricsListen string
	// Orchestrator holds the settings an operator tunes (systems, retries,
	// deadlines, the notice webhook, the clock); its parts are filled here.
	Orchestrator orchestrator.Config
	Logger       *slog.Logger
	// Registry receives the metrics; nil: a new one with the Go and
	// process collectors.
	Registry prometheus.Registerer
}

// The options' defaults, which the binary's flags show.
const (
	defaultListen     = "127.0.0.1:8080"
	defaultDataDir    = "data/orchestrator"
	defaultBus        = "embedded"
	defaultNATSListen = "127.0.0.1:4223"
)

func (o *Options) setDefaults() {
	if o.Listen == "" {
		o.Listen = defaultListen
	}
	if o.DataDir == "" {
		o.DataDir = defaultDataDir
	}
	if o.BusURL == "" {
		o.BusURL = defaultBus
	}
	if o.NATSListen == "" {
		o.NATSListen = defaultNATSListen
	}
	if o.NATSUsers == "" {
		o.NATSUsers = defaultNATSUsers(o.DataDir)
	}
	if o.StoreURL == "" {
		o.StoreURL = "sqlite:" + filepath.Join(o.DataDir, "lethe.db")
	}
	if o.KeysFile == "" {
		o.KeysFile = filepath.Join(o.DataDir, "keys.json")
	}
	if o.AdminTokenFile == "" {
		o.AdminTokenFile = filepath.Join(o.DataDir, "admin.token")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registry == nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		o.Registry = reg
	}
}

// Run opens the orchestrator's parts and runs it until ctx is cancelled;
// it closes what it opened.
func Run(ctx context.Context, opts Options) error {
	opts.setDefaults()
	log := opts.Logger
	// Everything under the data directory is private (folders 0700, files
	// 0600): its folder too, tightened if an older version made it 0755.
	if err := datadir.Ensure(opts.DataDir); err != nil {
		return err
	}
	b := opts.Bus
	if b == nil {
		var err error
		if opts.BusURL == "embedded" {
			var srv *natsbus.Embedded
			if srv, b, err = startEmbedded(ctx, opts); err != nil {
				return err
			}
			defer srv.Shutdown()
		} else {
			// A seed in <data>/nats.seed (orchestrator nats-config writes
			// it there) is the default user on an external NATS server.
			seed := filepath.Join(opts.DataDir, natsauth.SeedFile)
			if _, err := os.Stat(seed); err != nil {
				seed = ""
			}
			b, err = busurl.Dial(ctx, opts.BusURL, busurl.Options{Name: "lethe-orchestrator", Logger: log, NKeySeedFile: seed,
				TLSCA: opts.BusTLSCA, TLSCert: opts.BusTLSCert, TLSKey: opts.BusTLSKey})
			if err != nil {
				return fmt.Errorf("%w: bus: %w", ErrConfig, err)
			}
		}
		defer b.Close()
	}
	// The orchestrator makes the streams (on NATS), so that the connectors,
	// whose users may not, need not wait for its first message.
	if nb, ok := b.(interface {
		EnsureStreams(context.Context, ...string) error
	}); ok {
		if err := nb.EnsureStreams(ctx, natsauth.Kinds...); err != nil {
			log.Warn("the bus's streams could not be made at start: they are made on first use", "err", err)
		}
	}
	st, err := store.Open(ctx, opts.StoreURL, store.WithDurability(opts.Durability))
	if err != nil {
		return fmt.Errorf("%w: store: %w", ErrConfig, err)
	}
	defer st.Close()
	if opts.Durability.IsFast() {
		log.Warn("durability fast: the store (and an embedded NATS server) sync to the disk later; a power cut may lose the last seconds of acknowledged work",
			"durability", opts.Durability.String())
	} else {
		log.Info("durability strict: each commit to the store (and each write to an embedded NATS server) is synced to the disk before it is acknowledged",
			"durability", opts.Durability.String())
	}
	key, err := pseudonym.LoadKey(opts.DataDir)
	if err != nil {
		return fmt.Errorf("hash key: %w", err)
	}
	signer, err := proof.LoadSigner(filepath.Join(opts.DataDir, "signing.key"), proof.RoleOrchestrator, time.Now())
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	seal, err := proof.SealingKeyIn(opts.DataDir, signer)
	if err != nil {
		return fmt.Errorf("sealing key: %w", err)
	}
	keys, err := keyring.Open(opts.KeysFile, signer.Key, log)
	if err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	tokens := &auth.Tokens{Store: st, Now: time.Now}
	wrote, err := tokens.Bootstrap(ctx, opts.AdminTokenFile)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if wrote {
		log.Info("admin token written: use it as a bearer token, or let lethectl read it", "path", opts.AdminTokenFile)
	}
	cfg := opts.Orchestrator
	if opts.OIDC.Issuer != "" {
		if cfg.OIDC, err = auth.NewOIDC(ctx, opts.OIDC); err != nil {
			return fmt.Errorf("%w: single sign-on: %w", ErrConfig, err)
		}
		if opts.ConsoleOIDC.ClientID != "" {
			co := opts.ConsoleOIDC
			co.Provider = opts.OIDC
			co.Provider.Audience = ""
			if cfg.ConsoleOIDC, err = console.NewOIDCClient(ctx, co); err != nil {
				return fmt.Errorf("%w: console sign-on: %w", ErrConfig, err)
			}
		}
	}
	if opts.MetricsListen != "" {
		if cfg.MetricsListener, err = net.Listen("tcp", opts.MetricsListen); err != nil {
			return fmt.Errorf("%w: metrics listen: %w", ErrConfig, err)
		}
		defer cfg.MetricsListener.Close()
	}
	ln := opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", opts.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	defer ln.Close()
	blobs, err := blob.OpenURL(ctx, cmp.Or(opts.BlobsURL, filepath.Join(filepath.Dir(opts.DataDir), "blobs")))
	if err != nil {
		return fmt.Errorf("%w: blobs: %w", ErrConfig, err)
	}
	cfg.Listener, cfg.Store, cfg.Bus, cfg.Signer, cfg.SealKey, cfg.Keys, cfg.HashKey = ln, st, b, signer, seal, keys, key
	cfg.Blobs = blobs
	cfg.Logger, cfg.Registerer = log, opts.Registry
	o, err := orchestrator.New(cfg)
	if err != nil {
		return err
	}
	return o.Run(ctx)
}

// defaultNATSUsers is where the embedded server's users are kept by
// default: beside dataDir, or in it when it is at the root.
func defaultNATSUsers(dataDir string) string {
	abs, err := filepath.Abs(dataDir)
	if parent := filepath.Dir(abs); err != nil || parent == filepath.Dir(parent) {
		return filepath.Join(dataDir, "nats-users")
	}
	return filepath.Dir(dataDir)
}

// startEmbedded starts the embedded NATS server with a user per service
// (made at the first start) and connects to it as the orchestrator.
func startEmbedded(ctx context.Context, opts Options) (*natsbus.Embedded, bus.Bus, error) {
	log := opts.Logger
	host, port, err := splitHostPort(opts.NATSListen)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: NATS listen address: %w", ErrConfig, err)
	}
	systems := opts.Orchestrator.Systems
	if len(systems) == 0 {
		systems = orchestrator.DefaultSystems
	}
	users, err := natsauth.Ensure(opts.NATSUsers, natsauth.Config{Systems: systems})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: NATS users: %w", ErrConfig, err)
	}
	seeds := filepath.Join(opts.NATSUsers, "<service>", natsauth.SeedFile)
	if len(users.Created) > 0 {
		log.Info("NATS users made: an NKey seed per service", "users", strings.Join(users.Created, ","), "seeds", seeds)
	}
	seed, err := natsauth.ReadSeed(natsauth.SeedPath(opts.NATSUsers, natsauth.Orchestrator))
	if err != nil {
		return nil, nil, fmt.Errorf("NATS users: %w", err)
	}
	srv, err := natsbus.StartEmbedded(filepath.Join(opts.DataDir, "nats"), host, port, users.ServerUsers(), natsbus.WithDurability(opts.Durability))
	if err != nil {
		return nil, nil, fmt.Errorf("embedded NATS: %w", err)
	}
	log.Info("embedded NATS JetStream running: users loaded, each allowed its part, no anonymous access",
		"url", srv.URL(), "users", strings.Join(users.Names(), ","), "seeds", seeds, "sync", srv.Sync())
	b, err := natsbus.Connect(ctx, srv.URL(), natsbus.Config{Name: "lethe-orchestrator", Logger: log, NKeySeed: seed, Handlers: busurl.ServiceHandlers})
	if err != nil {
		srv.Shutdown()
		return nil, nil, fmt.Errorf("%w: bus: %w", ErrConfig, err)
	}
	return srv, b, nil
}

// Main parses args into Options and runs the orchestrator until ctx is
// cancelled. It returns the process exit code: 2 for bad flags or
// options, 1 for a failure while running.
//
// "orchestrator nats-config ..." writes the NATS users of an external
// server instead ([NATSConfig]).
func Main(ctx context.Context, fs *flag.FlagSet, args []string) int {
	if len(args) > 0 && args[0] == "nats-config" {
		return NATSConfig(args[1:], os.Stdout, os.Stderr)
	}
	d := orchestrator.Defaults()
	var opts Options
	fs.StringVar(&opts.Listen, "listen", defaultListen, "HTTP API address")
	fs.StringVar(&opts.DataDir, "data", defaultDataDir, "directory of the SQLite store, the hash key and the signing key")
	fs.StringVar(&opts.BusURL, "bus", envflag.Or("LETHE_BUS", envflag.Or("LETHE_NATS", defaultBus)),
		`"embedded" (an in-process NATS server with JetStream under <data>/nats, a user per service), nats://host:4222[?nkey_seed=FILE] or kafka://host1:9092,host2:9092 (env LETHE_BUS; on NATS the user defaults to <data>/nats.seed or LETHE_NATS_NKEY_SEED)`)
	fs.StringVar(&opts.BusURL, "nats", opts.BusURL, "the same as --bus (older name)")
	fs.StringVar(&opts.BlobsURL, "blobs", envflag.Or("LETHE_BLOBS", ""), "where exports are kept, encrypted: a folder, or s3://bucket/prefix?endpoint=host:port (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); connectors must share it (env LETHE_BLOBS; default: blobs in the folder that holds --data)")
	fs.StringVar(&opts.StoreURL, "store", envflag.Or("LETHE_STORE", ""), "sqlite:PATH or postgres://user:pass@host:5432/db (env LETHE_STORE; default sqlite:<data>/lethe.db)")
	durable := fs.String("durability", envflag.Or(durability.EnvVar, durability.Strict.String()),
		"strict: an fsync per commit and publish, so nothing acknowledged is lost on a power cut (SQLite synchronous=FULL, PostgreSQL synchronous_commit=on, "+
			"the embedded NATS server's JetStream syncs always); fast: the engines sync later (synchronous=NORMAL, synchronous_commit=off, "+
			"JetStream every 2 minutes), so a power cut may lose the last seconds of acknowledged work, a crash does not. "+
			"A NATS server of your own syncs as its own configuration says (sync_interval) (env "+durability.EnvVar+")")
	fs.StringVar(&opts.NATSListen, "nats-listen", defaultNATSListen, "where the embedded NATS server listens, for connectors in other processes")
	fs.StringVar(&opts.NATSUsers, "nats-users", "",
		"folder of the embedded NATS server's users: <dir>/<service>/nats.seed, made at the first start (default: the folder that holds --data, where connectors' --data folders are)")
	fs.StringVar(&opts.BusTLSCA, "bus-tls-ca", envflag.Or("LETHE_BUS_TLS_CA", ""), "CA certificates (PEM) that the broker's certificate must chain to; implies TLS (env LETHE_BUS_TLS_CA)")
	fs.StringVar(&opts.BusTLSCert, "bus-tls-cert", envflag.Or("LETHE_BUS_TLS_CERT", ""), "client certificate (PEM) shown to the broker, with --bus-tls-key (env LETHE_BUS_TLS_CERT)")
	fs.StringVar(&opts.BusTLSKey, "bus-tls-key", envflag.Or("LETHE_BUS_TLS_KEY", ""), "the client certificate's key (PEM) (env LETHE_BUS_TLS_KEY)")
	fs.StringVar(&opts.KeysFile, "keys", "", "keys file listing the connectors' public keys (default <data>/keys.json; re-read when it changes)")
	systems := fs.String("systems", strings.Join(d.Systems, ","), "comma-separated registered systems")
	oc := &opts.Orchestrator
	fs.Func("witness", "a witness that cosigns the log's checkpoints, NAME=URL+VERIFIER_KEY (repeat for more; env LETHE_WITNESSES, space-separated): "+
		"certificates are then issued only on checkpoints --witness-quorum of them cosigned", func(s string) error {
		w, err := orchestrator.ParseWitness(s)
		oc.Witnesses = append(oc.Witnesses, w)
		return err
	})
	for _, s := range strings.Fields(os.Getenv("LETHE_WITNESSES")) {
		w, err := orchestrator.ParseWitness(s)
		if err != nil {
			fmt.Fprintf(os.Stderr, "orchestrator: LETHE_WITNESSES: %v\n", err)
			return 2
		}
		oc.Witnesses = append(oc.Witnesses, w)
	}
	fs.IntVar(&oc.WitnessQuorum, "witness-quorum", 1, "how many witnesses must cosign a checkpoint before certificates are issued on it")
	fs.StringVar(&oc.LogOrigin, "log-origin", envflag.Or("LETHE_LOG_ORIGIN", d.LogOrigin),
		"the transparency log's name in its checkpoints (C2SP tlog-checkpoint origin): a host and path you own, such as privacy.example.com/lethe (env LETHE_LOG_ORIGIN)")
	fs.DurationVar(&oc.ExportExpiry, "export-expiry", d.ExportExpiry, "how long an export waits to be collected after its request ended; then its key is destroyed and its blobs deleted")
	fs.IntVar(&oc.MaxAttempts, "max-attempts", d.MaxAttempts, "attempts per task before it is dead-lettered")
	fs.DurationVar(&oc.RetryInitial, "retry-initial", d.RetryInitial, "first wait for a system's answer; doubles per attempt")
	fs.DurationVar(&oc.RetryMax, "retry-max", d.RetryMax, "longest wait for an answer")
	fs.DurationVar(&oc.Objective, "objective", d.Objective, "how soon a request should be fulfilled, for the SLO metric")
	fs.StringVar(&oc.NoticeWebhook, "notice-webhook", envflag.Or("LETHE_NOTICE_WEBHOOK", ""), "URL that also receives notices to data subjects (extensions) as signed JSON POSTs (env LETHE_NOTICE_WEBHOOK)")
	policiesFile := fs.String("policies", envflag.Or("LETHE_POLICIES", ""), "retention policies file (YAML: per tenant, per purpose: systems and data categories, period, clock, legal basis); each runs every --sweep-interval and on demand (env LETHE_POLICIES; default: none)")
	fs.DurationVar(&oc.SweepInterval, "sweep-interval", d.SweepInterval, "how often each retention policy runs (negative: only on demand)")
	tenantsFile := fs.String("tenants", envflag.Or("LETHE_TENANTS", ""), "tenants file of deadline policies (time zone, roll to working days, holidays); default: every tenant in UTC, no roll (env LETHE_TENANTS)")
	fs.StringVar(&opts.AdminTokenFile, "admin-token-file", envflag.Or("LETHE_ADMIN_TOKEN_FILE", ""),
		"file of the first admin token: registered if it exists, else created there (0600) when no admin token works (default <data>/admin.token; env LETHE_ADMIN_TOKEN_FILE)")
	fs.StringVar(&opts.OIDC.Issuer, "oidc-issuer", envflag.Or("LETHE_OIDC_ISSUER", ""), "OpenID Connect issuer URL whose ID tokens the API takes (env LETHE_OIDC_ISSUER)")
	fs.StringVar(&opts.OIDC.Audience, "oidc-audience", envflag.Or("LETHE_OIDC_AUDIENCE", ""), "the client ID those ID tokens must be issued to (env LETHE_OIDC_AUDIENCE)")
	fs.StringVar(&opts.OIDC.TenantClaim, "oidc-tenant-claim", auth.DefaultTenantClaim, "ID token claim naming the caller's tenant")
	fs.StringVar(&opts.OIDC.RoleClaim, "oidc-role-claim", auth.DefaultRoleClaim, "ID token claim naming the caller's role (admin, dpo, intake, auditor)")
	fs.StringVar(&opts.ConsoleOIDC.ClientID, "console-oidc-client-id", envflag.Or("LETHE_CONSOLE_OIDC_CLIENT_ID", ""),
		"the console's client at the --oidc-issuer: people sign in to /console/ there (authorization code with PKCE; env LETHE_CONSOLE_OIDC_CLIENT_ID; its secret, if any, only from env LETHE_CONSOLE_OIDC_CLIENT_SECRET)")
	fs.StringVar(&opts.ConsoleOIDC.RedirectURL, "console-oidc-redirect-url", envflag.Or("LETHE_CONSOLE_OIDC_REDIRECT_URL", ""),
		"where the identity provider sends people back: https://<host>/console/login/oidc/callback (env LETHE_CONSOLE_OIDC_REDIRECT_URL)")
	opts.ConsoleOIDC.ClientSecret = os.Getenv("LETHE_CONSOLE_OIDC_CLIENT_SECRET")
	origins := fs.String("allowed-origins", envflag.Or("LETHE_ALLOWED_ORIGINS", ""), "comma-separated browser origins whose calls the API takes; a call with another Origin is refused (env LETHE_ALLOWED_ORIGINS)")
	fs.Float64Var(&oc.RateLimit, "rate-limit", d.RateLimit, "calls per second per caller (bursts of twice that); negative: no limit")
	fs.StringVar(&opts.MetricsListen, "metrics-listen", envflag.Or("LETHE_METRICS_LISTEN", ""), "serve /metrics on this address instead of on the API (env LETHE_METRICS_LISTEN)")
	fs.StringVar(&oc.TLSCert, "tls-cert", envflag.Or("LETHE_TLS_CERT", ""), "serve the API over TLS with this certificate (PEM; with --tls-key)")
	fs.StringVar(&oc.TLSKey, "tls-key", envflag.Or("LETHE_TLS_KEY", ""), "the TLS certificate's private key (PEM)")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	mode, err := durability.Parse(*durable)
	if err != nil {
		fmt.Fprintf(fs.Output(), "orchestrator: bad --durability (or %s): %v\n", durability.EnvVar, err)
		return 2
	}
	opts.Durability = mode
	if (oc.TLSCert == "") != (oc.TLSKey == "") {
		fmt.Fprintln(os.Stderr, "orchestrator: --tls-cert and --tls-key go together")
		return 2
	}
	if *origins != "" {
		oc.AllowedOrigins = strings.Split(*origins, ",")
	}
	oc.Systems = strings.Split(*systems, ",")
	if *tenantsFile != "" {
		t, err := deadline.LoadTenants(*tenantsFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "orchestrator: --tenants: %v\n", err)
			return 2
		}
		oc.Deadlines = t
	}
	if *policiesFile != "" {
		p, err := retention.Load(*policiesFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "orchestrator: --policies: %v\n", err)
			return 2
		}
		oc.Policies = p
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "orchestrator: bad --log-level: %v\n", err)
		return 2
	}
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})).With("service", "orchestrator")
	if err := Run(ctx, opts); err != nil {
		opts.Logger.Error("orchestrator failed", "err", err)
		if errors.Is(err, ErrConfig) {
			return 2
		}
		return 1
	}
	return 0
}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	return host, n, nil
}

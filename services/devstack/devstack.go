// Package devstack runs the whole pipeline in one process on the embedded
// default: a NATS JetStream server, the orchestrator over SQLite, and the
// five demo connectors over seeded demo systems, plus a stand-in for the
// sub-processors' deletion APIs. `make run` and the end-to-end tests both
// start it, so what the tests prove is what a newcomer runs.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/busurl"
	"github.com/lethe-dev/lethe/pkg/bus/natsauth"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/memsystem"
	"github.com/lethe-dev/lethe/pkg/datadir"
	"github.com/lethe-dev/lethe/pkg/durability"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/services/accounts"
	"github.com/lethe-dev/lethe/services/billing"
	"github.com/lethe-dev/lethe/services/emailanalytics"
	"github.com/lethe-dev/lethe/services/mailer"
	"github.com/lethe-dev/lethe/services/orchestrator"
	"github.com/lethe-dev/lethe/services/orchestrator/app"
	"github.com/lethe-dev/lethe/services/orchestrator/retention"
	"github.com/lethe-dev/lethe/services/recordings"
	"github.com/lethe-dev/lethe/services/subprocessors"
	"github.com/lethe-dev/lethe/services/subprocessors/standin"
)

// Config configures the stack. Ports 0 (or -1 for NATS) pick free ones.
type Config struct {
	DataDir        string
	Listen         string // orchestrator API
	NATSHost       string
	NATSPort       int
	AccountsListen string // the demo accounts app's admin API
	VendorListen   string // the stand-in sub-processors
	People         int    // demo people to seed
	// InMemory runs the connectors over in-memory systems (MemorySystems)
	// instead of the seeded demo systems' databases, and starts neither the
	// accounts admin API nor the stand-in vendors: what a benchmark of
	// Lethe's own machinery (orchestrator, store, SDK, bus) runs.
	InMemory bool
	// Witness, if set, runs a witness that cosigns the log's checkpoints,
	// and the orchestrator issues certificates on cosigned checkpoints
	// only: WitnessInProcess, or the path of a lethe-witness binary (run
	// as a process of its own, listening on WitnessListen).
	Witness       string
	WitnessListen string
	// Without lists connectors not to start (StartConnector starts them
	// later), and "mailer" for no mailer (StartMailer).
	Without []string
	// BusURL, when set, is an external bus (nats:// or kafka://) used
	// instead of the embedded NATS server; BusPrefix keeps this stack's
	// topics apart on a shared broker.
	BusURL    string
	BusPrefix string
	// StoreURL, when set, is the orchestrator's store (postgres://...)
	// instead of SQLite under DataDir.
	StoreURL string
	// Durability is how far every part's stores take a write before it is
	// acknowledged: durability.Strict (the zero value) syncs each to the
	// disk (the embedded NATS server's JetStream always, SQLite
	// synchronous=FULL, PostgreSQL synchronous_commit=on); durability.Fast
	// leaves it to the engines. An external bus (BusURL) syncs as its own
	// configuration says.
	Durability durability.Mode
	// Orchestrator tunes retries, deadline policies (Deadlines) and the
	// notice webhook; zero values take the orchestrator's defaults. Its
	// parts (listener, store, bus, keys) are the stack's.
	Orchestrator orchestrator.Config
	// Now is the clock of every part: the orchestrator (unless
	// Orchestrator.Now is set), the connectors, and billing's dataset
	// engine, which decides when an invoice's retention is over. One clock
	// for all lets a test jump ten years and see a deferred erasure run.
	// Nil: time.Now.
	Now      func() time.Time
	Logger   *slog.Logger
	Registry *prometheus.Registry
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.NATSHost == "" {
		c.NATSHost = "127.0.0.1"
	}
	if c.AccountsListen == "" {
		c.AccountsListen = "127.0.0.1:8081"
	}
	if c.VendorListen == "" {
		c.VendorListen = "127.0.0.1:0"
	}
	if c.People == 0 {
		c.People = 300
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Stack is a running pipeline.
type Stack struct {
	cfg Config
	// API, AccountsAPI, VendorURL and NATSURL are where its parts listen.
	API, AccountsAPI, VendorURL, NATSURL string
	// Witness is where the stack's witness listens ("" for none).
	Witness string
	// AdminTokenFile holds the local operator's admin token
	// (DataDir/admin.token), made at the first start.
	AdminTokenFile string
	// Systems are the demo systems, open for inspection.
	Accounts       *accounts.System
	Billing        *billing.System
	EmailAnalytics *emailanalytics.System
	Recordings     *recordings.System
	Subprocessors  *subprocessors.System
	Vendors        *standin.Server
	// Memory are the in-memory systems of an InMemory stack, by name (nil
	// otherwise; the demo systems above are nil then).
	Memory map[string]*memsystem.System
	// Mailbox keeps the notices the demo mailer handed on: `make run`
	// mails no one.
	Mailbox *mailer.Memory

	ctx context.Context
	// bus is the stack's own connection: on the embedded server, the
	// mailer's (the tests read notices with it); on an external bus, the
	// one every part shares.
	bus bus.Bus
	// buses are the parts' connections on the embedded server, each as
	// its own NATS user ("orchestrator", a system); nil on an external bus.
	buses    map[string]bus.Bus
	taskKeys proof.KeySet // the orchestrator's public key
	blobs    blob.Store   // exports, shared by the connectors and the orchestrator (DataDir/blobs)
	// subjectKey is the orchestrator's subject hash key, given to the
	// connectors for re-applications.
	subjectKey []byte
	// mailerKey and mailerSeal are the demo mailer's keys.
	mailerKey  *proof.Signer
	mailerSeal *proof.SealKey
	wg         sync.WaitGroup
	mu         sync.Mutex
	errs       []error
	closers    []func()
}

// Start starts everything and returns once the API answers. Cancelling ctx
// stops the stack; Wait waits for it to stop.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	cfg.setDefaults()
	// Every part keeps personal data under DataDir: the folder is private
	// (0700; each part's files are 0600), tightened if an older version
	// made it 0755.
	if err := datadir.Ensure(cfg.DataDir); err != nil {
		return nil, err
	}
	s := &Stack{cfg: cfg, ctx: ctx}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	log := cfg.Logger

	s.NATSURL = cfg.BusURL
	if s.NATSURL == "" {
		if err := s.startNATS(ctx); err != nil {
			return nil, err
		}
	} else {
		if s.bus, err = busurl.Dial(ctx, s.NATSURL, busurl.Options{Name: "lethe-dev", Prefix: cfg.BusPrefix, Logger: cfg.Logger}); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { s.bus.Close() })
	}

	// The orchestrator's key, made here if this is the first start, so
	// that the connectors can check the tasks it signs.
	orchestratorKey := filepath.Join(cfg.DataDir, "orchestrator", "signing.key")
	signer, err := proof.LoadSigner(orchestratorKey, proof.RoleOrchestrator, time.Now())
	if err != nil {
		return nil, err
	}
	if _, err := proof.SealingKeyIn(filepath.Dir(orchestratorKey), signer); err != nil {
		return nil, err
	}
	if s.blobs, err = blob.NewFS(filepath.Join(cfg.DataDir, "blobs")); err != nil {
		return nil, err
	}
	// The orchestrator's subject hash key, which a re-application after a
	// restore names people by: the connectors hash their rows with it.
	if s.subjectKey, err = pseudonym.LoadKey(filepath.Join(cfg.DataDir, "orchestrator")); err != nil {
		return nil, err
	}
	if s.taskKeys, err = connector.OrchestratorKey(orchestratorKey + ".pub"); err != nil {
		return nil, err
	}
	if cfg.InMemory {
		s.Memory = MemorySystems(cfg.People)
	} else if err := s.openDemoSystems(ctx); err != nil {
		return nil, err
	}

	if err := s.registerKeys(); err != nil {
		return nil, err
	}
	// The orchestrator, wired as its binary wires it (app.Run), on the
	// stack's bus and clock.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("orchestrator API: %w", err)
	}
	s.API = "http://" + ln.Addr().String()
	oc := cfg.Orchestrator
	if cfg.Witness != "" {
		w, err := s.startWitness(ctx, signer)
		if err != nil {
			return nil, err
		}
		oc.Witnesses = append(oc.Witnesses, w)
	}
	if oc.Now == nil {
		oc.Now = cfg.Now
	}
	if oc.Policies == nil {
		// The demo tenant's retention policies, from the seeds.
		if oc.Policies, err = retention.Parse("demo policies", retention.Demo); err != nil {
			return nil, err
		}
	}
	s.AdminTokenFile = filepath.Join(cfg.DataDir, "admin.token")
	opts := app.Options{Listener: ln, DataDir: filepath.Join(cfg.DataDir, "orchestrator"), Bus: s.busOf(natsauth.Orchestrator), StoreURL: cfg.StoreURL,
		Durability: cfg.Durability, AdminTokenFile: s.AdminTokenFile, Orchestrator: oc, Logger: log.With("service", "orchestrator"), Registry: cfg.Registry}
	s.run("orchestrator", func(ctx context.Context) error { return app.Run(ctx, opts) })

	skip := map[string]bool{}
	for _, n := range cfg.Without {
		skip[n] = true
	}
	for name := range s.systems() {
		if !skip[name] {
			s.StartConnector(name)
		}
	}
	s.Mailbox = &mailer.Memory{}
	if !skip[natsauth.Mailer] {
		s.StartMailer()
	}
	if err := s.waitHealthy(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// demoSystems are the connectors of the stack.
var demoSystems = []string{accounts.Name, billing.Name, emailanalytics.Name, recordings.Name, subprocessors.Name}

// startNATS starts the embedded NATS server, which lets in only a user per
// part (their seeds made at the first start, in DataDir/<part>/nats.seed,
// where a connector binary run with --data DataDir/<system> finds its
// own), and connects each part as its user.
func (s *Stack) startNATS(ctx context.Context) error {
	cfg := s.cfg
	users, err := natsauth.Ensure(cfg.DataDir, natsauth.Config{Systems: demoSystems})
	if err != nil {
		return err
	}
	seeds := filepath.Join(cfg.DataDir, "<part>", natsauth.SeedFile)
	if len(users.Created) > 0 {
		cfg.Logger.Info("NATS users made: an NKey seed per part", "users", strings.Join(users.Created, ","), "seeds", seeds)
	}
	srv, err := natsbus.StartEmbedded(filepath.Join(cfg.DataDir, "nats"), cfg.NATSHost, cfg.NATSPort, users.ServerUsers(), natsbus.WithDurability(cfg.Durability))
	if err != nil {
		return err
	}
	s.closers = append(s.closers, srv.Shutdown)
	s.NATSURL = srv.URL()
	cfg.Logger.Info("embedded NATS JetStream running: users loaded, each part connects as its own, no anonymous access",
		"url", s.NATSURL, "users", strings.Join(users.Names(), ","), "seeds", seeds, "sync", srv.Sync())
	s.buses = map[string]bus.Bus{}
	for _, u := range users.Users {
		seed, err := natsauth.ReadSeed(u.SeedPath)
		if err != nil {
			return err
		}
		b, err := natsbus.Connect(ctx, s.NATSURL, natsbus.Config{Name: "lethe-" + u.Name, NKeySeed: seed, Logger: cfg.Logger.With("service", u.Name),
			Handlers: busurl.ServiceHandlers})
		if err != nil {
			return fmt.Errorf("NATS as %s: %w", u.Name, err)
		}
		s.closers = append(s.closers, func() { b.Close() })
		if u.Name == natsauth.Mailer {
			s.bus = b
		} else {
			s.buses[u.Name] = b
		}
	}
	// The orchestrator makes the streams (app.Run does too): made before
	// the connectors start, they need not wait for them.
	return s.buses[natsauth.Orchestrator].(*natsbus.Bus).EnsureStreams(ctx, natsauth.Kinds...)
}

// busOf is the bus of a part: its own connection on the embedded server,
// the shared one on an external bus.
func (s *Stack) busOf(name string) bus.Bus {
	if b, ok := s.buses[name]; ok {
		return b
	}
	return s.bus
}

// openDemoSystems opens and seeds the demo systems, with the stand-in
// vendors of the sub-processors (seeded with the same people) and the
// accounts app's admin API.
func (s *Stack) openDemoSystems(ctx context.Context) error {
	cfg := s.cfg
	s.Vendors = standin.New(cfg.People, standin.DemoToken)
	vendorAddr, err := s.serve(cfg.VendorListen, s.Vendors)
	if err != nil {
		return fmt.Errorf("stand-in vendors: %w", err)
	}
	s.VendorURL = "http://" + vendorAddr
	env := func(name string) connector.Env { return s.env(name) }
	if s.Accounts, err = accounts.Open(ctx, env(accounts.Name)); err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	s.closers = append(s.closers, func() { s.Accounts.Close() })
	if s.Billing, err = billing.Open(ctx, env(billing.Name)); err != nil {
		return fmt.Errorf("billing: %w", err)
	}
	s.closers = append(s.closers, func() { s.Billing.Close() })
	if s.EmailAnalytics, err = emailanalytics.Open(ctx, env(emailanalytics.Name)); err != nil {
		return fmt.Errorf("emailanalytics: %w", err)
	}
	s.closers = append(s.closers, func() { s.EmailAnalytics.Close() })
	if s.Recordings, err = recordings.Open(ctx, env(recordings.Name)); err != nil {
		return fmt.Errorf("recordings: %w", err)
	}
	s.closers = append(s.closers, func() { s.Recordings.Close() })
	if s.Subprocessors, err = subprocessors.Open(ctx, env(subprocessors.Name), subprocessors.Config{
		VendorsYAML: subprocessors.DemoVendors, Vars: map[string]string{"base": s.VendorURL},
		Getenv: func(string) string { return standin.DemoToken },
	}); err != nil {
		return fmt.Errorf("subprocessors: %w", err)
	}
	s.closers = append(s.closers, func() { s.Subprocessors.Close() })
	for name, sys := range s.systems() {
		if seeder, ok := sys.(connector.Seeder); ok {
			if err := seeder.Seed(ctx, s.cfg.People); err != nil {
				return fmt.Errorf("seed %s: %w", name, err)
			}
		}
	}
	accountsAddr, err := s.serve(cfg.AccountsListen, s.Accounts.AdminHandler())
	if err != nil {
		return fmt.Errorf("accounts admin API: %w", err)
	}
	s.AccountsAPI = "http://" + accountsAddr
	return nil
}

// MemorySystems are in-memory stand-ins for the five demo systems, each
// with people 1..people seeded, holding records of the categories the demo
// system holds.
func MemorySystems(people int) map[string]*memsystem.System {
	systems := map[string]*memsystem.System{
		accounts.Name:       memsystem.New(map[string]int64{"account": 1, "identification": 1, "connection": 12}),
		billing.Name:        memsystem.New(map[string]int64{"billing": 4}),
		emailanalytics.Name: memsystem.New(map[string]int64{"engagement": 20}),
		recordings.Name:     memsystem.New(map[string]int64{"recordings": 2, "contributions": 5}),
		subprocessors.Name:  memsystem.New(map[string]int64{"vendors": 3}),
	}
	for _, sys := range systems {
		_ = sys.Seed(context.Background(), people) // in memory: cannot fail
	}
	return systems
}

func (s *Stack) systems() map[string]connector.System {
	if s.Memory != nil {
		systems := map[string]connector.System{}
		for name, sys := range s.Memory {
			systems[name] = sys
		}
		return systems
	}
	return map[string]connector.System{
		accounts.Name: s.Accounts, billing.Name: s.Billing, emailanalytics.Name: s.EmailAnalytics,
		recordings.Name: s.Recordings, subprocessors.Name: s.Subprocessors,
	}
}

// registerKeys lists each connector's signing key (and the mailer's) in the orchestrator's
// keys file, as an operator does with `lethectl keys add` when the parts run
// apart.
func (s *Stack) registerKeys() error {
	path := filepath.Join(s.cfg.DataDir, "orchestrator", "keys.json")
	keys, err := proof.ReadKeySet(path)
	if err != nil {
		return err
	}
	for name := range s.systems() {
		signer, err := connector.SigningKey(filepath.Join(s.cfg.DataDir, name), name)
		if err != nil {
			return err
		}
		keys.Add(signer.Key)
	}
	// The mailer's: notices are sealed to it, its acknowledgements signed.
	dir := filepath.Join(s.cfg.DataDir, proof.Mailer)
	if s.mailerKey, err = connector.SigningKey(dir, proof.Mailer); err != nil {
		return err
	}
	if s.mailerSeal, err = connector.SealingKey(dir); err != nil {
		return err
	}
	keys.Add(s.mailerKey.Key)
	return proof.WriteKeySet(path, keys)
}

// StartConnector starts the connector of a demo system (once), on the
// stack's clock: a connector decides by it whether a retention it answered
// earlier is over.
func (s *Stack) StartConnector(name string) {
	sys, env := s.systems()[name], s.env(name)
	s.run(name, func(ctx context.Context) error { return connector.Start(ctx, name, env, sys) })
}

// StartMailer starts the demo mailer (once): it takes the notices to data
// subjects, keeps them in Mailbox and acknowledges each, as the user
// "mailer".
func (s *Stack) StartMailer() {
	cfg := mailer.Config{Bus: s.bus, Seal: s.mailerSeal, Signer: s.mailerKey, Sender: s.Mailbox,
		Logger: s.cfg.Logger.With("service", natsauth.Mailer), Now: s.cfg.Now}
	s.run(natsauth.Mailer, func(ctx context.Context) error { return mailer.Run(ctx, cfg) })
}

// env is what the connector of system name runs with: its folder, its
// bus, the stack's clock and durability, and the orchestrator's key to
// check tasks with.
func (s *Stack) env(name string) connector.Env {
	return connector.Env{DataDir: filepath.Join(s.cfg.DataDir, name), Bus: s.busOf(name), Logger: s.cfg.Logger.With("service", name),
		Registerer: s.cfg.Registry, Now: s.cfg.Now, TaskKeys: s.taskKeys, Durability: s.cfg.Durability, Blobs: s.blobs, SubjectKey: s.subjectKey}
}

// run runs a part until the stack's context ends, keeping its error.
func (s *Stack) run(name string, fn func(context.Context) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(s.ctx); err != nil {
			s.mu.Lock()
			s.errs = append(s.errs, fmt.Errorf("%s: %w", name, err))
			s.mu.Unlock()
			s.cfg.Logger.Error("part of the stack failed", "part", name, "err", err)
		}
	}()
}

// serve serves h on addr until the stack stops; it returns the address.
func (s *Stack) serve(addr string, h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	s.closers = append(s.closers, func() { srv.Close() })
	return ln.Addr().String(), nil
}

// Wait waits for the stack to stop after its context is cancelled and
// releases everything; it returns what went wrong on the way.
func (s *Stack) Wait() error {
	<-s.ctx.Done()
	s.wg.Wait()
	s.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

func (s *Stack) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// waitHealthy waits for the orchestrator's API to answer, or returns what
// stopped a part of the stack (the orchestrator's store, say) first.
func (s *Stack) waitHealthy(ctx context.Context) error {
	for i := 0; i < 100; i++ {
		s.mu.Lock()
		failed := errors.Join(s.errs...)
		s.mu.Unlock()
		if failed != nil {
			return failed
		}
		resp, err := http.Get(s.API + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("the orchestrator did not become healthy")
}

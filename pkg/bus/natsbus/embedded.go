package natsbus

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/lethe-dev/lethe/pkg/datadir"
	"github.com/lethe-dev/lethe/pkg/durability"
)

// Embedded is a NATS server with JetStream running in this process: the
// default for `make run` and for tests, so that nothing needs installing.
type Embedded struct {
	srv   *server.Server
	users int
}

// EmbeddedOption changes how [StartEmbedded] runs the server.
type EmbeddedOption func(*embeddedOptions)

type embeddedOptions struct{ durability durability.Mode }

// WithDurability sets when the embedded server's JetStream file store
// syncs to the disk: [durability.Strict] (the default) before it
// acknowledges each write (sync_interval: always, an fsync per publish and
// per ack), so that an acknowledged task or receipt survives a power loss;
// [durability.Fast] every 2 minutes (the server's default), which loses
// nothing when a process dies but may lose the last acknowledged writes on
// a power loss. A NATS server of one's own syncs as its configuration says.
func WithDurability(m durability.Mode) EmbeddedOption {
	return func(o *embeddedOptions) { o.durability = m }
}

// StartEmbedded starts a server with JetStream file storage under storeDir,
// listening on host:port (port -1 picks a free one), durable as opts say
// (by default [durability.Strict]: see [WithDurability]).
//
// users are the only clients it lets in, each allowed what its permissions
// say (package natsauth makes them: one per service). With no users it
// lets anyone in and allows everything: for the tests of the adapter
// itself, never for a server other processes can reach.
//
// The streams hold erasure requests, so storeDir is made (or tightened to)
// 0700 first. JetStream (nats-server v2.15) makes its own folders 0700 and
// files 0600, but MkdirAll would leave a storeDir that exists as it was.
func StartEmbedded(storeDir, host string, port int, users []*server.NkeyUser, opts ...EmbeddedOption) (*Embedded, error) {
	var o embeddedOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := datadir.Ensure(storeDir); err != nil {
		return nil, fmt.Errorf("natsbus: embedded server: %w", err)
	}
	if port > 0 {
		// The server only logs a port it cannot bind; say so plainly.
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("natsbus: embedded server: %w", err)
		}
		ln.Close()
	}
	for _, u := range users {
		if u == nil || u.Nkey == "" {
			return nil, errors.New("natsbus: embedded server: a user without a public key")
		}
	}
	sopts := &server.Options{
		ServerName: "lethe-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		Nkeys:      users,
		NoLog:      true,
		NoSigs:     true,
	}
	if !o.durability.IsFast() {
		// What "sync_interval: always" sets in a configuration file: an
		// fsync of each write before it is acknowledged (the interval
		// stays the default, for the background flush of the rest).
		sopts.SyncAlways = true
		sopts.SyncInterval = defaultSyncInterval
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natsbus: embedded server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("natsbus: embedded server on %s:%d not ready", host, port)
	}
	return &Embedded{srv: srv, users: len(users)}, nil
}

// Users is how many users the server lets in; 0 means anyone.
func (e *Embedded) Users() int { return e.users }

// defaultSyncInterval is nats-server's: how often JetStream syncs its
// files when it is not told to sync always.
const defaultSyncInterval = 2 * time.Minute

// Sync says how the server's JetStream store syncs to the disk, as the
// running server reports it: "always" (an fsync per write, before it is
// acknowledged) or "every 2m0s".
func (e *Embedded) Sync() string {
	c := e.srv.JetStreamConfig()
	switch {
	case c == nil:
		return "no JetStream"
	case c.SyncAlways:
		return "always"
	}
	return "every " + c.SyncInterval.String()
}

// URL is the client URL of the server.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

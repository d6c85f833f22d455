package natsbus

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/lethe-dev/lethe/pkg/datadir"
)

// Embedded is a NATS server with JetStream running in this process: the
// default for `make run` and for tests, so that nothing needs installing.
type Embedded struct {
	srv   *server.Server
	users int
}

// StartEmbedded starts a server with JetStream file storage under storeDir,
// listening on host:port (port -1 picks a free one).
//
// users are the only clients it lets in, each allowed what its permissions
// say (package natsauth makes them: one per service). With no users it
// lets anyone in and allows everything: for the tests of the adapter
// itself, never for a server other processes can reach.
//
// The streams hold erasure requests, so storeDir is made (or tightened to)
// 0700 first. JetStream (nats-server v2.15) makes its own folders 0700 and
// files 0600, but MkdirAll would leave a storeDir that exists as it was.
func StartEmbedded(storeDir, host string, port int, users []*server.NkeyUser) (*Embedded, error) {
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
	srv, err := server.NewServer(&server.Options{
		ServerName: "lethe-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		Nkeys:      users,
		NoLog:      true,
		NoSigs:     true,
	})
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

// URL is the client URL of the server.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

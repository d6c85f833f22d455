package natsbus

import (
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
	srv *server.Server
}

// StartEmbedded starts a server with JetStream file storage under storeDir,
// listening on host:port (port -1 picks a free one).
//
// The streams hold erasure requests, so storeDir is made (or tightened to)
// 0700 first. JetStream (nats-server v2.15) makes its own folders 0700 and
// files 0600, but MkdirAll would leave a storeDir that exists as it was.
func StartEmbedded(storeDir, host string, port int) (*Embedded, error) {
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
	srv, err := server.NewServer(&server.Options{
		ServerName: "lethe-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
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
	return &Embedded{srv: srv}, nil
}

// URL is the client URL of the server.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits for it.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

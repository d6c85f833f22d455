// Command vendor-standin serves the stand-in sub-processors of the demo
// (package standin) that the subprocessors connector calls.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lethe-dev/lethe/services/subprocessors/standin"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to serve the stand-in vendors on")
	people := flag.Int("people", 300, "the vendors hold records of demo people 1..N")
	flag.Parse()
	token := os.Getenv("LETHE_DEMO_VENDOR_TOKEN")
	if token == "" {
		token = standin.DemoToken
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: *listen, Handler: standin.New(*people, token), ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); srv.Shutdown(context.Background()) }()
	slog.Info("vendor stand-in serving", "listen", *listen, "people", *people)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		slog.Error("vendor stand-in", "err", err)
		os.Exit(1)
	}
}

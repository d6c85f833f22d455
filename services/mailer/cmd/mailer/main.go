// Command mailer hands Lethe's notices to data subjects to an SMTP server
// and acknowledges each to the orchestrator (package mailer).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/lethe-dev/lethe/pkg/bus/busurl"
	"github.com/lethe-dev/lethe/pkg/bus/natsauth"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/connector/connectorcmd"
	"github.com/lethe-dev/lethe/pkg/envflag"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/mailer"
)

func main() {
	fs := flag.NewFlagSet("mailer", flag.ContinueOnError)
	busURL := fs.String("bus", envflag.Or("LETHE_BUS", envflag.Or("LETHE_NATS", connectorcmd.DefaultNATS)),
		"nats://host:4222[?nkey_seed=FILE] or kafka://host:9092 (env LETHE_BUS); on NATS the user's seed defaults to <data>/nats.seed")
	dataDir := fs.String("data", filepath.Join("data", proof.Mailer), "directory of the mailer's keys (signing.key, seal.key) and NATS seed")
	smtpURL := fs.String("smtp", envflag.Or("LETHE_SMTP", ""), "smtp://[user:password@]host[:port] to send through (env LETHE_SMTP; required)")
	from := fs.String("from", envflag.Or("LETHE_MAIL_FROM", ""), "the mails' From address (env LETHE_MAIL_FROM; required)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	sender, err := mailer.ParseSMTP(*smtpURL, *from)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("service", "mailer")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *busURL, *dataDir, sender, log); err != nil {
		log.Error("mailer failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, busURL, dataDir string, sender mailer.Sender, log *slog.Logger) error {
	// Its keys, made at the first start: register signing.key.pub (which
	// carries the sealing key's public half) in the orchestrator's keys
	// file with lethectl keys add.
	signer, err := connector.SigningKey(dataDir, proof.Mailer)
	if err != nil {
		return err
	}
	seal, err := connector.SealingKey(dataDir)
	if err != nil {
		return err
	}
	seed := filepath.Join(dataDir, natsauth.SeedFile)
	if _, err := os.Stat(seed); err != nil {
		seed = ""
	}
	b, err := busurl.Dial(ctx, busURL, busurl.Options{Name: "lethe-mailer", Logger: log, NKeySeedFile: seed})
	if err != nil {
		return err
	}
	defer b.Close()
	log.Info("mailer running", "key_id", signer.Key.ID)
	return mailer.Run(ctx, mailer.Config{Bus: b, Seal: seal, Signer: signer, Sender: sender, Logger: log})
}

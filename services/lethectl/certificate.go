package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var certificateCommand = command{
	name:    "certificate",
	args:    "ID [-o FILE] [--html]",
	summary: "download the certificate of fulfilment of an ended request, exactly as issued",
	run:     runCertificate,
}

func runCertificate(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	out := fs.String("o", "", "write the certificate to `FILE` (default: stdout)")
	html := fs.Bool("html", false, "download the page for people instead of the certificate a verifier reads")
	patience := fs.Duration("timeout", 30*time.Second, "how long to wait for the certificate of a request that has ended (with witnesses, it is issued once they have cosigned the log)")
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	id, client := pos[0], a.client()
	// The bytes are copied as they come, never decoded and encoded again:
	// the verifier requires the certificate byte for byte as issued. (A
	// 409 comes before any byte: a download may be tried again.)
	download := func(w io.Writer) (int64, error) {
		return awaitCertificate(ctx, a, client, id, *patience, func(ctx context.Context) (int64, error) {
			return client.Certificate(ctx, id, *html, w)
		})
	}
	var (
		n   int64
		err error
	)
	if toStdout(*out) {
		n, err = download(a.stdout)
	} else {
		// A certificate holds no personal data (the subject only as a
		// keyed hash): it is meant to be handed to an auditor.
		n, err = saveFile(*out, 0o644, download)
	}
	if err != nil {
		code := a.fail(c, err)
		if api.IsStatus(err, http.StatusConflict) {
			fmt.Fprintf(a.stderr, "a certificate is issued when the request ends; follow it with: lethectl wait %s\n", id)
		}
		return code
	}
	if !toStdout(*out) {
		fmt.Fprintf(a.stderr, "wrote %d bytes to %s\n", n, *out)
		if !*html {
			fmt.Fprintf(a.stderr, "check it with: lethectl verify %s --keys keys.json\n", *out)
		}
	}
	return exitOK
}

// awaitCertificate downloads a certificate (fetch), and while the request
// has ended but its certificate is not issued yet (409), tries again, up
// to patience: with witnesses configured, it is issued on the first
// checkpoint they cosign after the request ended, a second or so later.
// A request still open is not waited for (lethectl wait is for that).
func awaitCertificate(ctx context.Context, a *app, client *api.Client, id string, patience time.Duration,
	fetch func(context.Context) (int64, error)) (int64, error) {
	waitCtx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	told := false
	for {
		n, err := fetch(ctx)
		if !api.IsStatus(err, http.StatusConflict) {
			return n, err
		}
		if r, _, gerr := client.Get(ctx, id); gerr != nil || !r.State.Ended() {
			return n, err
		}
		if !told {
			fmt.Fprintf(a.stderr, "request %s has ended; its certificate waits for the witnesses' cosignatures...\n", id)
			told = true
		}
		select {
		case <-waitCtx.Done():
			return n, fmt.Errorf("no certificate for %s after %v: the witnesses have not cosigned the log (see lethe_orchestrator_witness_refusals_total): %w", id, patience, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

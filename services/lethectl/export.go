package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/lethe-dev/lethe/pkg/exportbundle"
)

var exportCommand = command{
	name: "export",
	args: "download ID [-o FILE] | link ID",
	summary: "download the export bundle of a finished export request, checking every file against its manifest " +
		"and the manifest against the certificate; or make a single-use download link for the person",
	run: runExport,
}

func runExport(ctx context.Context, a *app, c command, args []string) int {
	if len(args) > 0 && args[0] == "link" {
		return runExportLink(ctx, a, c, args[1:])
	}
	if len(args) > 0 && args[0] == "download" {
		args = args[1:]
	}
	fs := a.newFlags(c)
	out := fs.String("o", "", "write the bundle to `FILE`, checked (default: stdout, unchecked)")
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	id, client := pos[0], a.client()
	if toStdout(*out) {
		if _, err := client.Export(ctx, id, a.stdout); err != nil {
			return a.fail(c, err)
		}
		fmt.Fprintln(a.stderr, "not checked: write it to a file with -o to check it against its manifest")
		return exitOK
	}
	var m *exportbundle.Manifest
	var digest [32]byte
	// The bundle is someone's personal data: readable by the owner only.
	// It is checked before it is renamed into place: a bundle that does
	// not match its manifest leaves no file.
	n, err := saveFile(*out, 0o600, func(w io.Writer) (int64, error) {
		bar := newByteBar(a.stderr, a.errTTY, "downloading", a.now)
		n, err := client.Export(ctx, id, io.MultiWriter(w, bar))
		if err != nil {
			bar.clear()
			return n, err
		}
		bar.done()
		f, ok := w.(*os.File)
		if !ok {
			return n, errors.New("the bundle can only be checked in a file")
		}
		check := newByteBar(a.stderr, a.errTTY, "checking", a.now)
		m, digest, err = exportbundle.CheckProgress(f, n, check.set)
		check.done()
		if err != nil {
			return n, fmt.Errorf("the bundle does not match its manifest: %w", err)
		}
		return n, nil
	})
	if err != nil {
		return a.fail(c, err)
	}
	files := 0
	for _, s := range m.Systems {
		files += len(s.Files)
		if s.Records != nil {
			files++
		}
	}
	sum := hex.EncodeToString(digest[:])
	fmt.Fprintf(a.stderr, "wrote %s to %s: %d systems, %d files, every sha256 matches the manifest\nmanifest sha256 %s\n",
		humanBytes(n), *out, len(m.Systems), files, sum)
	// The manifest is the one the log recorded: the certificate quotes it.
	var cert bytes.Buffer
	if _, err := client.Certificate(ctx, id, false, &cert); err != nil {
		return a.fail(c, fmt.Errorf("read the certificate to check the manifest against: %w", err))
	}
	var quoted struct {
		Manifest string `json:"export_manifest_sha256"`
	}
	if err := json.Unmarshal(cert.Bytes(), &quoted); err != nil || quoted.Manifest != sum {
		return a.fail(c, fmt.Errorf("the certificate of %s quotes manifest %q, not this bundle's", id, quoted.Manifest))
	}
	fmt.Fprintf(a.stderr, "the certificate of %s quotes this manifest (lethectl verify checks the certificate)\n", id)
	return exitOK
}

func runExportLink(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	l, err := a.client().ExportLink(ctx, pos[0])
	if err != nil {
		return a.fail(c, err)
	}
	fmt.Fprintf(a.stdout, "%s\n", l.URL)
	fmt.Fprintf(a.stderr, "single use, until %s: send it to the person only\n", l.ExpiresAt.UTC().Format(time.RFC3339))
	return exitOK
}

// byteBar shows how far a long transfer is: a bar when the total is
// known, bytes and rate when not. Off a terminal it prints one line at
// the end.
type byteBar struct {
	w           io.Writer
	live        bool
	what        string
	now         func() time.Time
	start, last time.Time
	n, total    int64
}

func newByteBar(w io.Writer, live bool, what string, now func() time.Time) *byteBar {
	t := now()
	return &byteBar{w: w, live: live, what: what, now: now, start: t}
}

func (b *byteBar) Write(p []byte) (int, error) {
	b.set(b.n+int64(len(p)), 0)
	return len(p), nil
}

func (b *byteBar) set(done, total int64) {
	b.n, b.total = done, total
	if t := b.now(); b.live && t.Sub(b.last) >= 100*time.Millisecond {
		b.last = t
		fmt.Fprintf(b.w, "\r\033[K%s", b.line())
	}
}

func (b *byteBar) line() string {
	rate := ""
	if s := b.now().Sub(b.start).Seconds(); s > 0 {
		rate = fmt.Sprintf(" (%s/s)", humanBytes(int64(float64(b.n)/s)))
	}
	if b.total <= 0 {
		return fmt.Sprintf("%s %s%s", b.what, humanBytes(b.n), rate)
	}
	const width = 30
	fill := int(width * b.n / b.total)
	return fmt.Sprintf("%s [%s%s] %3d%% %s%s", b.what, bytes.Repeat([]byte("#"), fill), bytes.Repeat([]byte(" "), width-fill),
		100*b.n/b.total, humanBytes(b.n), rate)
}

// clear takes a live bar off the terminal, for an error to be read alone.
func (b *byteBar) clear() {
	if b.live {
		fmt.Fprintf(b.w, "\r\033[K")
	}
}

func (b *byteBar) done() {
	if b.live {
		fmt.Fprintf(b.w, "\r\033[K")
	}
	fmt.Fprintln(b.w, b.line())
}

// humanBytes is n in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

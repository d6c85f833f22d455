package main

import (
	"context"
	"fmt"
	"io"
)

var exportCommand = command{
	name:    "export",
	args:    "ID [-o FILE]",
	summary: "download the export bundle of a finished export request",
	run:     runExport,
}

func runExport(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	out := fs.String("o", "", "write the bundle to `FILE` (default: stdout)")
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	client := a.client()
	if toStdout(*out) {
		if _, err := client.Export(ctx, pos[0], a.stdout); err != nil {
			return a.fail(c, err)
		}
		return exitOK
	}
	// The bundle is someone's personal data: readable by the owner only.
	n, err := saveFile(*out, 0o600, func(w io.Writer) (int64, error) { return client.Export(ctx, pos[0], w) })
	if err != nil {
		return a.fail(c, err)
	}
	fmt.Fprintf(a.stderr, "wrote %d bytes to %s\n", n, *out)
	return exitOK
}

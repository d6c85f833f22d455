package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
	if *out == "" || *out == "-" {
		if _, err := client.Export(ctx, pos[0], a.stdout); err != nil {
			return a.fail(c, err)
		}
		return exitOK
	}

	// The bundle is someone's personal data: readable by the owner only,
	// and written to a temporary file first so a failed download leaves
	// neither a partial bundle nor a clobbered earlier one.
	tmp, err := os.CreateTemp(filepath.Dir(*out), "."+filepath.Base(*out)+".*")
	if err != nil {
		return a.fail(c, fmt.Errorf("create file: %w", err))
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	n, err := client.Export(ctx, pos[0], tmp)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", *out, cerr)
	}
	if err != nil {
		return a.fail(c, err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return a.fail(c, fmt.Errorf("write %s: %w", *out, err))
	}
	fmt.Fprintf(a.stderr, "wrote %d bytes to %s\n", n, *out)
	return exitOK
}

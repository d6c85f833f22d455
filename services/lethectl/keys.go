package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lethe-dev/lethe/pkg/proof"
)

var keysCommand = command{
	name:    "keys",
	args:    "list | export | add | retire",
	summary: "the public keys that check certificates: list or export the server's, add or retire keys in a registry keys file",
	run:     group(keysListCommand, keysExportCommand, keysAddCommand, keysRetireCommand),
}

var keysListCommand = command{
	name:    "keys list",
	args:    "[--file KEYS.json]",
	summary: "list the server's public keys (or a keys file's) with their validity",
	run:     runKeysList,
}

var keysExportCommand = command{
	name:    "keys export",
	args:    "[-o KEYS.json]",
	summary: "save the server's keys file as is, to verify certificates offline later",
	run:     runKeysExport,
}

var keysAddCommand = command{
	name:    "keys add",
	args:    "KEYS.json PUBFILE...",
	summary: "add connectors' public entries (their <data>/signing.key.pub) to a registry keys file, offline",
	run:     runKeysAdd,
}

var keysRetireCommand = command{
	name:    "keys retire",
	args:    "KEYS.json KEYID [--at TIME]",
	summary: "end a key's validity in a registry keys file, offline: signatures made before then still verify",
	run:     runKeysRetire,
}

func runKeysList(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	file := fs.String("file", "", "list the keys of this keys `FILE` instead of the server's")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	var ks proof.KeySet
	if *file != "" {
		var err error
		if ks, err = readKeysFile(*file); err != nil {
			return a.badInput(c, err)
		}
	} else {
		raw, err := a.client().Keys(ctx)
		if err != nil {
			return a.fail(c, err)
		}
		if ks, err = parseKeySet(raw); err != nil {
			return a.fail(c, err)
		}
	}
	if len(ks.Keys) == 0 {
		fmt.Fprintln(a.stdout, "no keys")
		return exitOK
	}
	if err := writeKeys(a.stdout, ks, a.now()); err != nil {
		return a.fail(c, err)
	}
	return exitOK
}

// writeKeys prints a row per key, and where it stands now.
func writeKeys(w io.Writer, ks proof.KeySet, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tROLE\tSYSTEM\tNOT BEFORE\tNOT AFTER\tSTATUS")
	for _, k := range ks.Keys {
		notAfter, status := "-", "valid"
		if k.NotAfter != nil {
			notAfter = stamp(*k.NotAfter)
		}
		switch {
		case now.Before(k.NotBefore):
			status = "not yet valid"
		case !k.ValidAt(now):
			status = "retired"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Role, dash(k.System), stamp(k.NotBefore), notAfter, status)
	}
	return tw.Flush()
}

func runKeysExport(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	out := fs.String("o", "", "write the keys file to `FILE` (default: stdout)")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	raw, err := a.client().Keys(ctx)
	if err != nil {
		return a.fail(c, err)
	}
	// Checked, so a broken reply is not kept as a keys file, but written
	// as sent.
	ks, err := parseKeySet(raw)
	if err != nil {
		return a.fail(c, err)
	}
	if len(ks.Keys) == 0 {
		fmt.Fprintln(a.stderr, "warning: the server lists no keys: nothing can be verified with this file")
	}
	if err := saveBytes(a.stdout, *out, 0o644, raw); err != nil {
		return a.fail(c, err)
	}
	if !toStdout(*out) {
		fmt.Fprintf(a.stderr, "wrote %d keys to %s\n", len(ks.Keys), *out)
	}
	return exitOK
}

func runKeysAdd(_ context.Context, a *app, c command, args []string) int {
	fs := bareFlags(c)
	pos, code, ok := a.parse(c, fs, args, 2, -1)
	if !ok {
		return code
	}
	path := pos[0]
	// A keys file that does not exist yet is an empty registry.
	ks, err := proof.ReadKeySet(path)
	if err != nil {
		return a.badInput(c, err)
	}
	var added, sealed []proof.Key
	for _, p := range pos[1:] {
		k, err := proof.ReadPublicKey(p)
		if err != nil {
			err = fmt.Errorf("%s: %w", p, err)
			if !strings.HasSuffix(p, ".pub") {
				err = fmt.Errorf("%w (give the public entry, signing.key.pub, never the private key)", err)
			}
			return a.badInput(c, err)
		}
		if old, err := ks.Find(k.ID); err == nil {
			if !bytes.Equal(old.Public, k.Public) {
				return a.badInput(c, fmt.Errorf("%s: key id %s is already in %s for another public key", p, k.ID, path))
			}
			if len(old.Seal) == 0 && len(k.Seal) > 0 {
				// A key registered before sealing keys existed gets its
				// sealing key (nothing else of the entry changes): without
				// it, its system receives no task.
				old.Seal = k.Seal
				ks.Add(old)
				sealed = append(sealed, old)
				continue
			}
			// Unchanged, so adding again neither duplicates a key nor
			// brings a retired one back.
			fmt.Fprintf(a.stdout, "%s: already in %s, unchanged\n", k.ID, path)
			continue
		}
		ks.Add(k)
		added = append(added, k)
	}
	if len(added) == 0 && len(sealed) == 0 {
		return exitOK
	}
	if err := ks.Validate(); err != nil {
		return a.fail(c, err)
	}
	if err := proof.WriteKeySet(path, ks); err != nil {
		return a.fail(c, fmt.Errorf("write %s: %w", path, err))
	}
	for _, k := range sealed {
		fmt.Fprintf(a.stdout, "%s: its sealing key added\n", k.ID)
	}
	for _, k := range added {
		fmt.Fprintf(a.stdout, "%s: added, %s key%s, valid from %s\n", k.ID, k.Role, forSystem(k), stamp(k.NotBefore))
		if others := othersValid(ks, k, k.NotBefore); len(others) > 0 {
			fmt.Fprintf(a.stdout, "  both keys are accepted now; once the new one is in use, retire the old: lethectl keys retire %s %s\n", path, others[0])
		}
	}
	return exitOK
}

func runKeysRetire(_ context.Context, a *app, c command, args []string) int {
	fs := bareFlags(c)
	atFlag := fs.String("at", "", "retire the key at this `TIME` (RFC 3339; default now)")
	pos, code, ok := a.parse(c, fs, args, 2, 2)
	if !ok {
		return code
	}
	at := a.now().UTC().Truncate(time.Second)
	if *atFlag != "" {
		t, err := time.Parse(time.RFC3339, *atFlag)
		if err != nil {
			return a.usageError(c, fs, "--at must be an RFC 3339 time, such as 2026-05-01T00:00:00Z")
		}
		at = t.UTC()
	}
	path, id := pos[0], pos[1]
	ks, err := readKeysFile(path)
	if err != nil {
		return a.badInput(c, err)
	}
	k, err := ks.Find(id)
	if err != nil {
		return a.fail(c, fmt.Errorf("%s: %w", path, err))
	}
	k.NotAfter = &at
	ks.Add(k)
	if err := ks.Validate(); err != nil {
		return a.fail(c, err)
	}
	if err := proof.WriteKeySet(path, ks); err != nil {
		return a.fail(c, fmt.Errorf("write %s: %w", path, err))
	}
	fmt.Fprintf(a.stdout, "%s: retired at %s: what it signed before then still verifies, nothing it signs later does\n", id, stamp(at))
	if len(othersValid(ks, k, at)) == 0 {
		fmt.Fprintf(a.stderr, "warning: no other %s key%s stays valid after %s: add the new key first\n", k.Role, forSystem(k), stamp(at))
	}
	return exitOK
}

// othersValid lists the ids of the other keys that may sign what k signs,
// and are valid at t or later.
func othersValid(ks proof.KeySet, k proof.Key, t time.Time) []string {
	var ids []string
	for _, o := range ks.Keys {
		if o.ID != k.ID && o.Role == k.Role && o.System == k.System && (o.NotAfter == nil || o.NotAfter.After(t)) {
			ids = append(ids, o.ID)
		}
	}
	return ids
}

func forSystem(k proof.Key) string {
	if k.System == "" {
		return ""
	}
	return " for system " + k.System
}

// readKeysFile reads a keys file that must exist (proof.ReadKeySet takes a
// missing file for an empty one, right for a registry, wrong for a file a
// user names to verify with).
func readKeysFile(path string) (proof.KeySet, error) {
	if _, err := os.Stat(path); err != nil {
		return proof.KeySet{}, fmt.Errorf("keys file: %w", err)
	}
	ks, err := proof.ReadKeySet(path)
	if err != nil {
		return ks, err
	}
	if len(ks.Keys) == 0 {
		return ks, fmt.Errorf("keys file %s: no keys in it (save one with: lethectl keys export -o %s)", path, path)
	}
	return ks, nil
}

// parseKeySet reads a keys file the server sent.
func parseKeySet(raw []byte) (proof.KeySet, error) {
	var ks proof.KeySet
	if err := json.Unmarshal(raw, &ks); err != nil {
		return ks, fmt.Errorf("keys from the server: %w", err)
	}
	if err := ks.Validate(); err != nil {
		return ks, fmt.Errorf("keys from the server: %w", err)
	}
	return ks, nil
}

// badInput reports a file named on the command line that cannot be used,
// and returns the usage exit code: nothing was checked.
func (a *app) badInput(c command, err error) int {
	fmt.Fprintf(a.stderr, "lethectl %s: %v\n", c.name, err)
	return exitUsage
}

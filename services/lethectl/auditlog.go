package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var auditLogCommand = command{
	name:    "audit log",
	args:    "[--keys KEYS.json] [--old CHECKPOINT] [-o CHECKPOINT]",
	summary: "read the whole public log (tlog-tiles) and check every entry against its signed checkpoint, and that it extends an older one",
	run:     runAuditLog,
}

// runAuditLog mirrors the log as anyone can, without a token: the
// checkpoint, checked with the orchestrator's key; every hash tile,
// checked against the checkpoint (tlog.TileHashReader); every entry
// bundle, each entry proved in the checkpoint's tree and read as a log
// entry. With --old, it also proves that the log extends a checkpoint
// saved earlier: nothing logged then was changed or removed.
func runAuditLog(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	keysPath := fs.String("keys", "", "check the checkpoint with this keys `FILE` (default: the server's keys, which trusts the server)")
	oldPath := fs.String("old", "", "a checkpoint `FILE` saved earlier (-o): check that the log extends it")
	out := fs.String("o", "", "save the checkpoint read to `FILE`, for a later --old")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	client := a.client()
	ks, code, ok := a.auditKeys(ctx, c, client, *keysPath)
	if !ok {
		return code
	}
	raw, err := client.LogFile(ctx, "checkpoint")
	if err != nil {
		return a.fail(c, err)
	}
	th, err := proof.OpenCheckpoint(ks, raw)
	if err != nil {
		return a.fail(c, err)
	}
	tiles := &tileFetcher{ctx: ctx, client: client}
	hashes := tlog.TileHashReader(tlog.Tree{N: th.Size, Hash: th.Root}, tiles)
	events := map[string]int{}
	for start := int64(0); start < th.Size; start += 1 << 8 {
		width := min(th.Size-start, 1<<8)
		t := tlog.Tile{H: 8, L: -1, N: start >> 8, W: int(width)}
		bundle, err := tiles.read(t)
		if err != nil {
			return a.fail(c, err)
		}
		entries, err := proof.ReadEntryBundle(bundle, t.W)
		if err != nil {
			return a.fail(c, fmt.Errorf("%s: %w", proof.TilePath(t), err))
		}
		for j, entry := range entries {
			i := start + int64(j)
			p, err := tlog.ProveRecord(th.Size, i, hashes)
			if err != nil {
				return a.fail(c, fmt.Errorf("entry %d: %w", i, err))
			}
			if err := proof.CheckInclusion(th, i, entry, p); err != nil {
				return a.fail(c, err)
			}
			e, err := proof.DecodeEntry(entry)
			if err != nil {
				return a.fail(c, fmt.Errorf("entry %d: %w", i, err))
			}
			events[e.Event]++
		}
	}
	if *oldPath != "" {
		old, err := readCheckpoint(ks, *oldPath)
		if err != nil {
			return a.badInput(c, err)
		}
		p, err := tlog.ProveTree(th.Size, old.Size, hashes)
		if err == nil {
			err = proof.CheckConsistency(old, th, p)
		}
		if err != nil {
			fmt.Fprintf(a.stdout, "NOT CONSISTENT: %v\n", err)
			return exitError
		}
		fmt.Fprintf(a.stdout, "the log of size %d extends the saved one of size %d: nothing logged then was changed or removed\n", th.Size, old.Size)
	}
	if *out != "" {
		if err := saveBytes(a.stdout, *out, 0o644, raw); err != nil {
			return a.fail(c, err)
		}
	}
	var counts []string
	for _, ev := range slices.Sorted(maps.Keys(events)) {
		counts = append(counts, fmt.Sprintf("%s=%d", ev, events[ev]))
	}
	fmt.Fprintf(a.stdout, "log %s: %d entries, every one proved in the checkpoint signed %s by %s (root %s)\n",
		proof.CheckpointOrigin(raw), th.Size, stamp(th.Time), th.KeyID, th.Root)
	fmt.Fprintf(a.stdout, "events: %s\n", strings.Join(counts, " "))
	return exitOK
}

// auditKeys reads the keys file to check signatures with, or the
// server's keys (and says that this trusts the server).
func (a *app) auditKeys(ctx context.Context, c command, client *api.Client, path string) (proof.KeySet, int, bool) {
	if path != "" {
		ks, err := readKeysFile(path)
		if err != nil {
			return ks, a.badInput(c, err), false
		}
		return ks, exitOK, true
	}
	raw, err := client.Keys(ctx)
	if err != nil {
		return proof.KeySet{}, a.fail(c, err), false
	}
	ks, err := parseKeySet(raw)
	if err != nil {
		return ks, a.fail(c, err), false
	}
	fmt.Fprintln(a.stderr, "note: signatures checked with the server's own keys; for a check that does not trust the server, give --keys with a keys file saved earlier")
	return ks, exitOK, true
}

// readCheckpoint reads and opens a checkpoint saved earlier.
func readCheckpoint(ks proof.KeySet, path string) (proof.TreeHead, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return proof.TreeHead{}, fmt.Errorf("checkpoint: %w", err)
	}
	return proof.OpenCheckpoint(ks, b)
}

// tileFetcher reads the log's tiles from the server (tlog.TileReader).
type tileFetcher struct {
	ctx    context.Context
	client *api.Client
}

func (f *tileFetcher) Height() int { return 8 }

func (f *tileFetcher) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := f.read(t)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (f *tileFetcher) SaveTiles([]tlog.Tile, [][]byte) {}

// read fetches one tile from the log's tlog-tiles layout.
func (f *tileFetcher) read(t tlog.Tile) ([]byte, error) {
	return f.client.LogFile(f.ctx, proof.TilePath(t))
}

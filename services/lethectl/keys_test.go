package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

func TestKeysList(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := newProofServer(t, f)
	accounts := f.Connectors["accounts"].Key.ID
	if code, _, stderr := runCLI(t, "keys", "retire", f.KeysPath, accounts, "--at", "2026-02-01T00:00:00Z"); code != 0 {
		t.Fatal(stderr)
	}
	// Rows with their cells one space apart (see squeeze).
	wantRows := []string{
		"KEY ID ROLE SYSTEM NOT BEFORE NOT AFTER STATUS\n",
		accounts + " connector accounts 2026-01-01 00:00:00 UTC 2026-02-01 00:00:00 UTC retired\n",
		f.Connectors["billing"].Key.ID + " connector billing 2026-01-01 00:00:00 UTC - valid\n",
		f.Orchestrator.Key.ID + " orchestrator - 2026-01-01 00:00:00 UTC - valid\n",
	}
	tests := []struct {
		name string
		args []string
		want wantOutput
	}{
		{"the server's keys", []string{"--api", srv.URL}, wantOutput{stdout: wantRows}},
		{"a keys file", []string{"--file", f.KeysPath}, wantOutput{stdout: wantRows}},
		{"a missing keys file", []string{"--file", filepath.Join(t.TempDir(), "keys.json")}, wantOutput{code: exitUsage, stderr: []string{"keys file: ", "no such file"}}},
		{"server down", []string{"--api", "http://127.0.0.1:1"}, wantOutput{code: exitError, stderr: []string{"lethectl keys list: GET http://127.0.0.1:1/v1/keys"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, append([]string{"keys", "list"}, tt.args...)...)
			tt.want.check(t, code, squeeze(stdout), stderr)
		})
	}
}

func TestKeysExport(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := newProofServer(t, f)
	// Served as is, with a layout of the server's own: the file must
	// hold these bytes, not a re-encoding.
	served := []byte("{\"keys\":\n" + string(mustRead(t, f.KeysPath))[len("{\n  \"keys\": "):])
	srv.mu.Lock()
	srv.keys = served
	srv.mu.Unlock()

	t.Run("to stdout", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI(t, "keys", "export", "--api", srv.URL)
		wantOutput{}.check(t, code, stdout, stderr)
		if stdout != string(served) {
			t.Errorf("stdout = %q, want the server's bytes %q", stdout, served)
		}
	})
	t.Run("to a file, that verifies a certificate", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		out := filepath.Join(dir, "keys.json")
		code, stdout, stderr := runCLI(t, "keys", "export", "--api", srv.URL, "-o", out)
		wantOutput{stderr: []string{"wrote 3 keys to " + out}}.check(t, code, stdout, stderr)
		if got := mustRead(t, out); string(got) != string(served) {
			t.Errorf("file holds %q, want the server's bytes", got)
		}
		cert := writeFile(t, dir, "cert.json", f.certificate(t, "req-1", received.Add(time.Hour)))
		code, stdout, stderr = runCLI(t, "verify", cert, "--keys", out)
		wantOutput{stdout: []string{"VERIFIED: request req-1"}}.check(t, code, stdout, stderr)
	})
	t.Run("a broken keys file is not saved", func(t *testing.T) {
		t.Parallel()
		bad := newProofServer(t, f)
		bad.mu.Lock()
		bad.keys = []byte(`{"keys":[{"key_id":"x","role":"connector","system":"a","public_key":"AAEC","not_before":"2026-01-01T00:00:00Z"}]}`)
		bad.mu.Unlock()
		dir := t.TempDir()
		code, stdout, stderr := runCLI(t, "keys", "export", "--api", bad.URL, "-o", filepath.Join(dir, "keys.json"))
		wantOutput{code: exitError, stderr: []string{"keys from the server: key \"x\": public key must be 32 bytes"}}.check(t, code, stdout, stderr)
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("files left behind: %v", entries)
		}
	})
}

func TestKeysAdd(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	accounts, billing := f.Connectors["accounts"].Key, f.Connectors["billing"].Key

	// A second accounts key, as a rotated connector writes it.
	rotated, rotatedPub := prooftest.NewSigner(t, "accounts", prooftest.KeysFrom.AddDate(0, 2, 0))
	notJSON := writeFile(t, t.TempDir(), "junk.pub", []byte("not json\n"))
	shortKey := writeFile(t, t.TempDir(), "short.pub", []byte(`{"key_id":"x","role":"connector","system":"a","public_key":"AAEC","not_before":"2026-01-01T00:00:00Z"}`))

	tests := []struct {
		name string
		// before runs first, on the registry keys file.
		before func(t *testing.T, keys string)
		pubs   []string
		want   wantOutput
		// wantIDs are the keys the file must hold afterwards; nil: the
		// file must be as it was before.
		wantIDs []string
		check   func(t *testing.T, ks proof.KeySet)
	}{
		{
			name:    "a new registry",
			pubs:    []string{f.PubPath("accounts"), f.PubPath("billing")},
			want:    wantOutput{stdout: []string{accounts.ID + ": added, connector key for system accounts, valid from 2026-01-01 00:00:00 UTC", billing.ID + ": added"}},
			wantIDs: []string{accounts.ID, billing.ID},
		},
		{
			name: "adding again changes nothing",
			before: func(t *testing.T, keys string) {
				mustRun(t, "keys", "add", keys, f.PubPath("accounts"))
			},
			pubs: []string{f.PubPath("accounts")},
			want: wantOutput{stdout: []string{accounts.ID + ": already in ", "unchanged", "!added"}},
		},
		{
			name: "adding again does not bring a retired key back",
			before: func(t *testing.T, keys string) {
				mustRun(t, "keys", "add", keys, f.PubPath("accounts"))
				mustRun(t, "keys", "retire", keys, accounts.ID, "--at", "2026-02-01T00:00:00Z")
			},
			pubs:    []string{f.PubPath("accounts"), f.PubPath("billing")},
			want:    wantOutput{stdout: []string{accounts.ID + ": already in ", billing.ID + ": added"}},
			wantIDs: []string{accounts.ID, billing.ID},
			check: func(t *testing.T, ks proof.KeySet) {
				if k, _ := ks.Find(accounts.ID); k.NotAfter == nil {
					t.Error("the retired key is valid again")
				}
			},
		},
		{
			name: "a key registered before sealing keys gets its sealing key",
			before: func(t *testing.T, keys string) {
				mustRun(t, "keys", "add", keys, f.PubPath("accounts"))
			},
			pubs: []string{func() string {
				k := accounts
				k.Seal = bytes.Repeat([]byte{7}, 32)
				b, _ := json.Marshal(k)
				return writeFile(t, t.TempDir(), "signing.key.pub", b)
			}()},
			want:    wantOutput{stdout: []string{accounts.ID + ": its sealing key added", "!unchanged"}},
			wantIDs: []string{accounts.ID},
			check: func(t *testing.T, ks proof.KeySet) {
				if k, _ := ks.Find(accounts.ID); len(k.Seal) != 32 || !k.NotBefore.Equal(accounts.NotBefore) {
					t.Errorf("the entry: seal %d bytes, valid from %v", len(k.Seal), k.NotBefore)
				}
			},
		},
		{
			name: "a rotated key is added beside the old one",
			before: func(t *testing.T, keys string) {
				mustRun(t, "keys", "add", keys, f.PubPath("accounts"))
			},
			pubs:    []string{rotatedPub},
			want:    wantOutput{stdout: []string{rotated.Key.ID + ": added", "both keys are accepted now", "lethectl keys retire ", " " + accounts.ID}},
			wantIDs: []string{accounts.ID, rotated.Key.ID},
		},
		{
			name:   "not JSON: nothing is written",
			before: func(t *testing.T, keys string) { mustRun(t, "keys", "add", keys, f.PubPath("accounts")) },
			pubs:   []string{f.PubPath("billing"), notJSON},
			want:   wantOutput{code: exitUsage, stderr: []string{"lethectl keys add: " + notJSON + ": public key " + notJSON + ": invalid character"}},
		},
		{
			name: "a public key of the wrong size",
			pubs: []string{shortKey},
			want: wantOutput{code: exitUsage, stderr: []string{shortKey + ": key \"x\": public key must be 32 bytes"}},
		},
		{
			name: "a missing file",
			pubs: []string{filepath.Join(f.Dir, "nope.pub")},
			want: wantOutput{code: exitUsage, stderr: []string{"nope.pub: public key: open ", "no such file"}},
		},
		{
			name: "the private key instead of the public entry",
			pubs: []string{filepath.Join(f.Dir, "billing", "signing.key")},
			want: wantOutput{code: exitUsage, stderr: []string{"give the public entry, signing.key.pub, never the private key"}},
		},
		{
			name: "no public entry given",
			want: wantOutput{code: exitUsage, stderr: []string{"missing argument", "usage: lethectl keys add KEYS.json PUBFILE..."}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys := filepath.Join(t.TempDir(), "registry.json")
			if tt.before != nil {
				tt.before(t, keys)
			}
			before, _ := os.ReadFile(keys)
			code, stdout, stderr := runCLI(t, append([]string{"keys", "add", keys}, tt.pubs...)...)
			tt.want.check(t, code, stdout, stderr)
			after, _ := os.ReadFile(keys)
			if tt.wantIDs == nil {
				if string(after) != string(before) {
					t.Errorf("keys file changed:\n%s\nwas:\n%s", after, before)
				}
				return
			}
			ks, err := proof.ReadKeySet(keys)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, k := range ks.Keys {
				ids = append(ids, k.ID)
			}
			if strings.Join(ids, " ") != strings.Join(slices.Sorted(slices.Values(tt.wantIDs)), " ") {
				t.Errorf("keys file holds %v, want %v", ids, tt.wantIDs)
			}
			if tt.check != nil {
				tt.check(t, ks)
			}
		})
	}
}

func TestKeysRetire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// args are the arguments after "keys retire KEYS.json".
		args       func(f *fixture) []string
		want       wantOutput
		wantAfter  string // not_after of accounts' key afterwards (RFC 3339); "now": between the start and end of the run
		rotatedKey bool   // a second accounts key is registered first
	}{
		{
			name: "at a given time",
			args: func(f *fixture) []string {
				return []string{f.Connectors["accounts"].Key.ID, "--at", "2026-05-01T12:00:00+02:00"}
			},
			want:      wantOutput{stdout: []string{": retired at 2026-05-01 10:00:00 UTC: what it signed before then still verifies"}, stderr: []string{"warning: no other connector key for system accounts stays valid after 2026-05-01 10:00:00 UTC: add the new key first"}},
			wantAfter: "2026-05-01T10:00:00Z",
		},
		{
			name:       "now, after the new key was added: no warning",
			args:       func(f *fixture) []string { return []string{f.Connectors["accounts"].Key.ID} },
			want:       wantOutput{stdout: []string{": retired at "}, stderr: []string{"!warning"}},
			wantAfter:  "now",
			rotatedKey: true,
		},
		{
			name: "retiring again moves the date",
			args: func(f *fixture) []string {
				return []string{"--at", "2026-06-01T00:00:00Z", f.Connectors["accounts"].Key.ID}
			},
			want:      wantOutput{stdout: []string{"retired at 2026-06-01 00:00:00 UTC"}},
			wantAfter: "2026-06-01T00:00:00Z",
		},
		{
			name: "before the key was valid",
			args: func(f *fixture) []string {
				return []string{f.Connectors["accounts"].Key.ID, "--at", "2025-12-01T00:00:00Z"}
			},
			want: wantOutput{code: exitError, stderr: []string{"not_after is not after not_before"}},
		},
		{
			name: "an unknown key",
			args: func(f *fixture) []string { return []string{"accounts-0000000000000000"} },
			want: wantOutput{code: exitError, stderr: []string{"key not in the keys file: accounts-0000000000000000"}},
		},
		{
			name: "a bad time",
			args: func(f *fixture) []string { return []string{f.Connectors["accounts"].Key.ID, "--at", "tomorrow"} },
			want: wantOutput{code: exitUsage, stderr: []string{"--at must be an RFC 3339 time"}},
		},
		{
			name: "no key id",
			args: func(f *fixture) []string { return nil },
			want: wantOutput{code: exitUsage, stderr: []string{"missing argument"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tt.rotatedKey {
				_, pub := prooftest.NewSigner(t, "accounts", prooftest.KeysFrom)
				mustRun(t, "keys", "add", f.KeysPath, pub)
			}
			if tt.name == "retiring again moves the date" {
				mustRun(t, "keys", "retire", f.KeysPath, f.Connectors["accounts"].Key.ID, "--at", "2026-05-01T00:00:00Z")
			}
			before, start := mustRead(t, f.KeysPath), time.Now().Truncate(time.Second)
			code, stdout, stderr := runCLI(t, append([]string{"keys", "retire", f.KeysPath}, tt.args(f)...)...)
			end := time.Now()
			tt.want.check(t, code, stdout, stderr)
			ks, err := proof.ReadKeySet(f.KeysPath)
			if err != nil {
				t.Fatal(err)
			}
			k, _ := ks.Find(f.Connectors["accounts"].Key.ID)
			switch tt.wantAfter {
			case "":
				if got := mustRead(t, f.KeysPath); string(got) != string(before) {
					t.Errorf("keys file changed:\n%s", got)
				}
			case "now":
				if k.NotAfter == nil || k.NotAfter.Before(start) || k.NotAfter.After(end) {
					t.Errorf("not_after = %v, want between %v and %v", k.NotAfter, start, end)
				}
			default:
				if k.NotAfter == nil || k.NotAfter.UTC().Format(time.RFC3339) != tt.wantAfter {
					t.Errorf("not_after = %v, want %s", k.NotAfter, tt.wantAfter)
				}
			}
			// Only the named key changed.
			for _, o := range ks.Keys {
				if o.ID != k.ID && o.NotAfter != nil {
					t.Errorf("%s retired too", o.ID)
				}
			}
		})
	}
	t.Run("a missing keys file", func(t *testing.T) {
		t.Parallel()
		keys := filepath.Join(t.TempDir(), "keys.json")
		code, stdout, stderr := runCLI(t, "keys", "retire", keys, "accounts-0000000000000000")
		wantOutput{code: exitUsage, stderr: []string{"keys file: ", "no such file"}}.check(t, code, stdout, stderr)
		if _, err := os.Stat(keys); err == nil {
			t.Error("a keys file was created")
		}
	})
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("lethectl %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// squeeze puts the cells of a table one space apart.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

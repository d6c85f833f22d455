package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

func TestAuditTreeHead(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.grow(7)
	srv := newProofServer(t, f)
	_, strangerPub := prooftest.NewSigner(t, proof.RoleOrchestrator, prooftest.KeysFrom)
	otherKeys := filepath.Join(t.TempDir(), "keys.json")
	mustRun(t, "keys", "add", otherKeys, strangerPub)

	tests := []struct {
		name string
		args []string
		out  bool
		want wantOutput
	}{
		{"to a file, signature checked", []string{"--keys", f.KeysPath}, true,
			wantOutput{stderr: []string{"tree head: size 7, root ", " by " + f.Orchestrator.Key.ID + ", signature checked"}}},
		{"to stdout", nil, false, wantOutput{stdout: []string{`"size":7`, `"key_id":"` + f.Orchestrator.Key.ID}, stderr: []string{"!signature checked"}}},
		{"signed by a key the auditor does not know", []string{"--keys", otherKeys}, true,
			wantOutput{code: exitError, stderr: []string{"tree head: key not in the keys file: orchestrator-"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "head.json")
			args := append([]string{"audit", "tree-head", "--api", srv.URL}, tt.args...)
			if tt.out {
				args = append(args, "-o", out)
			}
			code, stdout, stderr := runCLI(t, args...)
			tt.want.check(t, code, stdout, stderr)
			if !tt.out || code != exitOK {
				return
			}
			var th proof.TreeHead
			if err := json.Unmarshal(mustRead(t, out), &th); err != nil {
				t.Fatal(err)
			}
			if th.Size != 7 {
				t.Errorf("saved head of size %d, want 7", th.Size)
			}
		})
	}
}

func TestAuditConsistency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// args runs once the old head (of a log of 5 entries) is saved
		// and the log has grown to 25; it may alter the log, the
		// server or the files, and returns the arguments after
		// "audit consistency --api URL".
		args func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string
		want wantOutput
	}{
		{
			name: "the log grew",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				return []string{"--old", old, "--keys", f.KeysPath}
			},
			want: wantOutput{stdout: []string{
				"old tree head: size 5, root ", "new tree head: size 25, root ",
				"CONSISTENT: the log of size 25 extends the log of size 5: none of the 5 entries the old tree head covers was changed or removed\n",
			}, stderr: []string{"!note:"}},
		},
		{
			name: "with the server's keys, it says so",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				return []string{"--old", old}
			},
			want: wantOutput{stdout: []string{"CONSISTENT"}, stderr: []string{"note: signatures checked with the server's own keys"}},
		},
		{
			name: "two saved heads",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				newer := saveHead(t, srv, dir, "new.json")
				f.grow(3) // the server's log has moved on since
				return []string{"--old", old, "--new", newer, "--keys", f.KeysPath}
			},
			want: wantOutput{stdout: []string{"CONSISTENT: the log of size 25 extends the log of size 5"}},
		},
		{
			name: "a head against itself",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				return []string{"--old", old, "--new", old, "--keys", f.KeysPath}
			},
			want: wantOutput{stdout: []string{"CONSISTENT: the log of size 5 extends the log of size 5"}},
		},
		{
			name: "heads swapped",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				return []string{"--old", saveHead(t, srv, dir, "new.json"), "--new", old, "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitError, stdout: []string{"NOT CONSISTENT", "the older tree head (size 25) is larger than the newer (size 5)"}},
		},
		{
			name: "a past entry rewritten",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				f.Log.Rewrite(2, proof.Entry{RequestID: "req-other-2", Event: proof.EventCreated, At: received, Tenant: "demo", Type: "export"}.Encode())
				return []string{"--old", old, "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitError, stdout: []string{
				"NOT CONSISTENT: the newer tree head does not prove that the log only grew:\n",
				"  - the log of size 25 does not extend the log of size 5: ",
				"!signature",
			}},
		},
		{
			name: "the proof altered",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				srv.mu.Lock()
				srv.tamperProof = true
				srv.mu.Unlock()
				return []string{"--old", old, "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitError, stdout: []string{"NOT CONSISTENT", "does not extend the log of size 5"}},
		},
		{
			name: "the old head's root altered",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				th := readHead(t, old)
				th.Root[0] ^= 1
				return []string{"--old", writeHead(t, dir, "old.json", th), "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitError, stdout: []string{"  - old tree head: signature does not verify", "does not extend"}},
		},
		{
			name: "the old head's size altered",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				th := readHead(t, old)
				th.Size = 4
				return []string{"--old", writeHead(t, dir, "old.json", th), "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitError, stdout: []string{"  - old tree head: signature does not verify", "!new tree head: signature"}},
		},
		{
			name: "the new head signed by a stranger",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				stranger, _ := prooftest.NewSigner(t, proof.RoleOrchestrator, prooftest.KeysFrom)
				th := readHead(t, saveHead(t, srv, dir, "new.json"))
				th = proof.SignTreeHead(stranger, th.Size, th.Root, th.Time)
				return []string{"--old", old, "--new", writeHead(t, dir, "forged.json", th), "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitError, stdout: []string{"  - new tree head: key not in the keys file: orchestrator-"}},
		},
		{
			name: "a new head larger than the server's log",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				th := readHead(t, saveHead(t, srv, dir, "new.json"))
				th = proof.SignTreeHead(f.Orchestrator, 99, th.Root, th.Time)
				return []string{"--old", old, "--new", writeHead(t, dir, "big.json", th), "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitError, stdout: []string{"  - no consistency proof from the server: bad sizes (HTTP 400)"}},
		},
		{
			name: "no --old",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				return []string{"--keys", f.KeysPath}
			},
			want: wantOutput{code: exitUsage, stderr: []string{"--old is required"}},
		},
		{
			name: "an old head that is not one",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				return []string{"--old", f.KeysPath}
			},
			want: wantOutput{code: exitUsage, stderr: []string{"lethectl audit consistency: tree head ", "not a signed tree head"}},
		},
		{
			name: "a missing new head",
			args: func(t *testing.T, f *fixture, srv *proofServer, old, dir string) []string {
				return []string{"--old", old, "--new", filepath.Join(dir, "nope.json")}
			},
			want: wantOutput{code: exitUsage, stderr: []string{"tree head: open ", "no such file"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			srv := newProofServer(t, f)
			dir := t.TempDir()
			f.grow(5)
			old := saveHead(t, srv, dir, "old-head.json")
			f.grow(20)
			args := tt.args(t, f, srv, old, dir)
			code, stdout, stderr := runCLI(t, append([]string{"audit", "consistency", "--api", srv.URL}, args...)...)
			tt.want.check(t, code, stdout, stderr)
		})
	}
}

// TestAuditConsistencyEverySize checks every pair of sizes of a grown log.
func TestAuditConsistencyEverySize(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := newProofServer(t, f)
	dir := t.TempDir()
	var heads []string
	for n := 1; n <= 9; n++ {
		f.grow(1)
		heads = append(heads, saveHead(t, srv, dir, "head-"+strconv.Itoa(n)+".json"))
	}
	for i, older := range heads {
		for _, newer := range heads[i:] {
			code, stdout, stderr := runCLI(t, "audit", "consistency", "--api", srv.URL, "--old", older, "--new", newer, "--keys", f.KeysPath)
			if code != exitOK || !strings.Contains(stdout, "CONSISTENT:") {
				t.Errorf("%s then %s: exit %d\n%s%s", filepath.Base(older), filepath.Base(newer), code, stdout, stderr)
			}
		}
	}
}

// saveHead saves the server's current tree head with the CLI.
func saveHead(t *testing.T, srv *proofServer, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	mustRun(t, "audit", "tree-head", "--api", srv.URL, "-o", p)
	return p
}

func readHead(t *testing.T, path string) proof.TreeHead {
	t.Helper()
	var th proof.TreeHead
	if err := json.Unmarshal(mustRead(t, path), &th); err != nil {
		t.Fatal(err)
	}
	return th
}

func writeHead(t *testing.T, dir, name string, th proof.TreeHead) string {
	t.Helper()
	b, err := json.Marshal(th)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, b)
}

// audit log reads the whole public log from its tiles, as a mirror would,
// and proves every entry in the signed checkpoint (a log of 300 entries
// spans two entry bundles); with --old it proves the log extends a
// checkpoint saved before, and catches a log whose past was rewritten;
// a tile changed on the way is caught too.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.grow(7)
	srv := newProofServer(t, f)
	saved := filepath.Join(t.TempDir(), "checkpoint")
	code, stdout, stderr := runCLI(t, "audit", "log", "--api", srv.URL, "--keys", f.KeysPath, "-o", saved)
	wantOutput{stdout: []string{"log lethe.example/log: 7 entries, every one proved", "events: created=7"}}.check(t, code, stdout, stderr)

	f.grow(293)
	code, stdout, stderr = runCLI(t, "audit", "log", "--api", srv.URL, "--keys", f.KeysPath, "--old", saved)
	wantOutput{stdout: []string{"300 entries, every one proved", "extends the saved one of size 7"}}.check(t, code, stdout, stderr)

	f.Log.Rewrite(3, proof.Entry{RequestID: "req-other-3", Event: proof.EventCreated, At: received, Tenant: "demo", Type: "erasure", SubjectHash: "h-forged"}.Encode())
	code, stdout, stderr = runCLI(t, "audit", "log", "--api", srv.URL, "--keys", f.KeysPath, "--old", saved)
	wantOutput{code: exitError, stdout: []string{"NOT CONSISTENT"}}.check(t, code, stdout, stderr)

	srv.mu.Lock()
	srv.corruptTiles = true
	srv.mu.Unlock()
	code, stdout, stderr = runCLI(t, "audit", "log", "--api", srv.URL, "--keys", f.KeysPath)
	wantOutput{code: exitError, stderr: []string{"lethectl audit log:"}}.check(t, code, stdout, stderr)
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/proof"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	completed := received.Add(5*time.Minute + 123*time.Millisecond)
	tests := []struct {
		name string
		// args builds the arguments after "verify" from a fixture and a
		// valid certificate of req-1 issued by it.
		args func(t *testing.T, f *fixture, dir string, cert []byte) []string
		want wantOutput
	}{
		{
			name: "a certificate as issued verifies",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				return []string{writeFile(t, dir, "cert.json", cert), "--keys", f.KeysPath}
			},
			want: wantOutput{stdout: []string{
				"VERIFIED: request req-1 (erasure, tenant demo), partially_retained, received 2026-03-02 09:00:00 UTC, deadline 2026-04-02 23:59:59 UTC, completed 2026-03-02 09:05:00 UTC, deadline met\n",
				"the request's 4 log entries are in the transparency log of size 4",
				"login_history=3 profile=1", "invoice=2",
				"legal basis: Art. 17(3)(b) GDPR: accounting law; kept until 2036-12-31",
				"2026-03-02 09:01:00 UTC", "2026-03-02 09:02:00 UTC",
				"!NOT VERIFIED",
			}},
		},
		{
			name: "flags first, certificate without its newline",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				return []string{"--keys", f.KeysPath, writeFile(t, dir, "cert.json", bytes.TrimSuffix(cert, []byte("\n")))}
			},
			want: wantOutput{stdout: []string{"VERIFIED: request req-1"}},
		},
		{
			name: "a changed count fails: the orchestrator's signature and the receipt both say so",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				forged := bytes.Replace(cert, []byte(`"remaining":2`), []byte(`"remaining":0`), 1)
				if bytes.Equal(forged, cert) {
					t.Fatal("nothing to tamper with")
				}
				return []string{writeFile(t, dir, "cert.json", forged), "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitError, stdout: []string{
				"NOT VERIFIED: the certificate (claiming to be of request req-1) cannot be relied on:\n",
				"  - certificate signature: signature does not verify",
				"  - billing: the summary does not match the signed receipt",
				"!VERIFIED: request", "!billing   retained",
			}},
		},
		{
			name: "one byte of layout fails",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				return []string{writeFile(t, dir, "cert.json", append([]byte("{ "), cert[1:]...)), "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitError, stdout: []string{"NOT VERIFIED", "not in canonical form"}},
		},
		{
			name: "a later extension of the deadline fails",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				forged := bytes.Replace(cert, []byte(`"deadline":"2026-04-02T23:59:59Z"`), []byte(`"deadline":"2026-06-02T23:59:59Z"`), 1)
				return []string{writeFile(t, dir, "cert.json", forged), "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitError, stdout: []string{"certificate signature: signature does not verify", "deadline 2026-06-02T23:59:59Z is not one month after receipt"}},
		},
		{
			name: "a keys file without billing's key fails for billing",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				ks, err := proof.ReadKeySet(f.KeysPath)
				if err != nil {
					t.Fatal(err)
				}
				ks.Keys = slicesDelete(ks.Keys, f.Connectors["billing"].Key.ID)
				keys := filepath.Join(dir, "keys.json")
				if err := proof.WriteKeySet(keys, ks); err != nil {
					t.Fatal(err)
				}
				return []string{writeFile(t, dir, "cert.json", cert), "--keys", keys}
			},
			want: wantOutput{code: exitError, stdout: []string{"  - billing: receipt: key not in the keys file: billing-", "!accounts:"}},
		},
		{
			name: "a key retired before it signed fails",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				if code, _, stderr := runCLI(t, "keys", "retire", f.KeysPath, f.Connectors["accounts"].Key.ID, "--at", "2026-03-02T09:00:30Z"); code != 0 {
					t.Fatal(stderr)
				}
				return []string{writeFile(t, dir, "cert.json", cert), "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitError, stdout: []string{"  - accounts: receipt: key not valid at the time of signing: accounts-"}},
		},
		{
			name: "a key retired after it signed still verifies what it signed",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				if code, _, stderr := runCLI(t, "keys", "retire", f.KeysPath, f.Connectors["accounts"].Key.ID, "--at", "2026-03-02T09:01:01Z"); code != 0 {
					t.Fatal(stderr)
				}
				return []string{writeFile(t, dir, "cert.json", cert), "--keys", f.KeysPath}
			},
			want: wantOutput{stdout: []string{"VERIFIED: request req-1"}},
		},
		{
			name: "a keys file given as the certificate is not a certificate",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				return []string{f.KeysPath, "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitError, stdout: []string{"NOT VERIFIED: this file cannot be relied on:", "not a certificate"}},
		},
		{
			name: "missing --keys",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				return []string{writeFile(t, dir, "cert.json", cert)}
			},
			want: wantOutput{code: exitUsage, stderr: []string{"--keys is required", "usage: lethectl verify CERT.json --keys KEYS.json"}, stdout: []string{"!VERIFIED"}},
		},
		{
			name: "missing certificate file",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				return []string{filepath.Join(dir, "nope.json"), "--keys", f.KeysPath}
			},
			want: wantOutput{code: exitUsage, stderr: []string{"lethectl verify: certificate: open ", "no such file"}},
		},
		{
			name: "missing keys file",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				return []string{writeFile(t, dir, "cert.json", cert), "--keys", filepath.Join(dir, "nope.json")}
			},
			want: wantOutput{code: exitUsage, stderr: []string{"lethectl verify: keys file: ", "no such file"}},
		},
		{
			name: "unreadable keys file",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				return []string{writeFile(t, dir, "cert.json", cert), "--keys", writeFile(t, dir, "keys.json", []byte("not json"))}
			},
			want: wantOutput{code: exitUsage, stderr: []string{"lethectl verify: keys file ", "invalid character"}},
		},
		{
			name: "a keys file with no keys",
			args: func(t *testing.T, f *fixture, dir string, cert []byte) []string {
				return []string{writeFile(t, dir, "cert.json", cert), "--keys", writeFile(t, dir, "keys.json", []byte(`{"keys":[]}`))}
			},
			want: wantOutput{code: exitUsage, stderr: []string{"no keys in it", "lethectl keys export -o"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			cert := f.certificate(t, "req-1", completed)
			code, stdout, stderr := runCLI(t, append([]string{"verify"}, tt.args(t, f, t.TempDir(), cert)...)...)
			tt.want.check(t, code, stdout, stderr)
			if code == exitOK {
				// One line per system, in order.
				var systems []string
				for _, l := range strings.Split(stdout, "\n") {
					if strings.HasSuffix(l, " ") {
						t.Errorf("line ends in spaces: %q", l)
					}
					if s, _, ok := strings.Cut(l, " "); ok && (s == "accounts" || s == "billing") {
						systems = append(systems, l)
					}
				}
				if len(systems) != 2 || !strings.Contains(systems[0], "erased") || !strings.Contains(systems[1], "retained") {
					t.Errorf("want one line for accounts (erased) and one for billing (retained), got %q", systems)
				}
				for _, s := range []string{"accounts", "billing"} {
					if !strings.Contains(stdout, f.Connectors[s].Key.ID) {
						t.Errorf("%s's key id is not shown:\n%s", s, stdout)
					}
				}
			}
		})
	}
}

func TestVerifyDeadlineMissed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Completed two days and a bit after the deadline: still an authentic
	// certificate, which says the deadline was missed.
	cert := f.certificate(t, "req-late", time.Date(2026, 4, 5, 1, 0, 0, 0, time.UTC))
	code, stdout, stderr := runCLI(t, "verify", writeFile(t, t.TempDir(), "cert.json", cert), "--keys", f.KeysPath)
	wantOutput{stdout: []string{"VERIFIED: request req-late", "completed 2026-04-05 01:00:00 UTC, deadline MISSED by 2d 1h"}}.check(t, code, stdout, stderr)
}

// TestVerifyFlippedBytes flips bytes all along a real certificate: the
// CLI never says VERIFIED and always exits 1. (pkg/proof's tests flip
// every byte; this checks that the CLI reports each failure.)
func TestVerifyFlippedBytes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cert := f.certificate(t, "req-1", received.Add(time.Hour))
	p := filepath.Join(t.TempDir(), "cert.json")
	for i := 0; i < len(cert); i += 61 {
		forged := bytes.Clone(cert)
		forged[i] ^= 0x01
		if err := os.WriteFile(p, forged, 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runCLI(t, "verify", p, "--keys", f.KeysPath)
		if code != exitError || !strings.HasPrefix(stdout, "NOT VERIFIED") || strings.Contains(stdout, "VERIFIED: request") {
			t.Fatalf("byte %d flipped: exit %d\n%s%s", i, code, stdout, stderr)
		}
	}
}

func slicesDelete(keys []proof.Key, id string) []proof.Key {
	var out []proof.Key
	for _, k := range keys {
		if k.ID != id {
			out = append(out, k)
		}
	}
	return out
}

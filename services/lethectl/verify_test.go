package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"

	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
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
				"partially retained: billing keeps data until 2036-12-31; that data is to be erased then, and a new certificate issued\n",
				"!NOT VERIFIED", "!deadline policy", "!extended", "!answered",
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

// What verify prints of a tenant's deadline policy, an extension and its
// notice, and an answer given before a deferred erasure ran; and lies about
// them, caught.
func TestVerifyDeadlinesAndDeferral(t *testing.T) {
	t.Parallel()
	paris := &deadline.Spec{TimeZone: "Europe/Paris", RollToWorkingDay: true, Holidays: []string{"2026-04-06"}}
	extendedAt := received.Add(24 * time.Hour)
	reason := "the request covers twelve systems"
	late := time.Date(2026, 4, 20, 0, 0, 0, 0, time.UTC) // after the original deadline, before the extended one
	answered := received.Add(5 * time.Minute)
	tests := []struct {
		name     string
		erasure  prooftest.Erasure
		followUp bool
		forge    func(t *testing.T, cert []byte) []byte
		want     wantOutput
	}{
		{
			// Received on 4 March in Paris: due on Saturday 4 April, rolled
			// past Sunday and Easter Monday to the end of Tuesday 7 April.
			name:    "a tenant's deadline policy",
			erasure: prooftest.Erasure{Received: time.Date(2026, 3, 4, 9, 0, 0, 0, time.UTC), Policy: paris, Minimal: true},
			want: wantOutput{stdout: []string{
				"deadline policy: days counted in Europe/Paris, a deadline on a Saturday, a Sunday or a public holiday moved to the next working day (holidays: 2026-04-06); the deadline is 2026-04-07 23:59:59 CEST there\n",
				"received 2026-03-04 09:00:00 UTC, deadline 2026-04-07 21:59:59 UTC, completed",
			}},
		},
		{
			name: "an extension told to the person in time",
			erasure: prooftest.Erasure{Completed: late, Minimal: true, Extend: &prooftest.Extend{At: extendedAt, Reason: reason, Notices: []prooftest.Notice{
				{Channel: "bus"}, {At: extendedAt.Add(time.Hour), Channel: "webhook"},
			}}},
			want: wantOutput{stdout: []string{
				"deadline extended on 2026-03-03 09:00:00 UTC from 2026-04-02 23:59:59 UTC to 2026-06-02 23:59:59 UTC (Art. 12(3) GDPR), reason: the request covers twelve systems\n",
				"notice of the extension to the data subject: delivered 2026-03-03 09:01:00 UTC by bus, webhook\n",
				"deadline 2026-06-02 23:59:59 UTC (extended from 2026-04-02 23:59:59 UTC), completed 2026-04-20 00:00:00 UTC, deadline met\n",
				"!no effect", "!deadline policy",
			}},
		},
		{
			name:    "an extension never told: no effect, the deadline missed",
			erasure: prooftest.Erasure{Completed: late, Minimal: true, Extend: &prooftest.Extend{At: extendedAt, Reason: reason}},
			want: wantOutput{stdout: []string{
				"notice of the extension to the data subject: not delivered when this certificate was issued: until it is, the extension has no effect\n",
				"deadline 2026-04-02 23:59:59 UTC (the extension to 2026-06-02 23:59:59 UTC has no effect), completed 2026-04-20 00:00:00 UTC, deadline MISSED by 17d 0h\n",
			}},
		},
		{
			name: "an extension told after the original deadline: no effect",
			erasure: prooftest.Erasure{Completed: late, Minimal: true, Extend: &prooftest.Extend{At: extendedAt, Reason: reason, Notices: []prooftest.Notice{
				{At: time.Date(2026, 4, 3, 10, 0, 0, 0, time.UTC), Channel: "webhook"},
			}}},
			want: wantOutput{stdout: []string{
				"notice of the extension to the data subject: not delivered by the original deadline (delivered 2026-04-03 10:00:00 UTC by webhook): the extension has no effect\n",
				"deadline MISSED by 17d 0h",
			}},
		},
		{
			name:     "answered partially_retained, then billing's deferred erasure ran",
			erasure:  prooftest.Erasure{Completed: answered},
			followUp: true,
			want: wantOutput{stdout: []string{
				"answered 2026-03-02 09:05:00 UTC as partially_retained (billing kept data until 2036-12-31); the deferred erasure then ran, and the request ended fulfilled 2036-12-31 01:00:00 UTC\n",
				"VERIFIED: request req-1 (erasure, tenant demo), fulfilled, received 2026-03-02 09:00:00 UTC, deadline 2026-04-02 23:59:59 UTC, answered 2026-03-02 09:05:00 UTC, completed 2036-12-31 01:00:00 UTC, deadline met\n",
				"!partially retained:", "!retained   ",
			}},
		},
		{
			name:     "answered partially_retained, then erased, with only the entries a certificate needs",
			erasure:  prooftest.Erasure{Completed: answered, Minimal: true},
			followUp: true,
			want: wantOutput{stdout: []string{
				"answered 2026-03-02 09:05:00 UTC as partially_retained; the deferred erasure then ran, and the request ended fulfilled",
			}},
		},
		{
			name:     "the first answer's time moved",
			erasure:  prooftest.Erasure{Completed: answered},
			followUp: true,
			forge: func(t *testing.T, cert []byte) []byte {
				return replace(t, cert, `"answered_at":"2026-03-02T09:05:00Z"`, `"answered_at":"2026-03-02T09:04:00Z"`)
			},
			want: wantOutput{code: exitError, stdout: []string{
				"  - certificate signature: signature does not verify",
				"  - answered_at is 2026-03-02T09:04:00Z, but the log first answered the request at 2026-03-02T09:05:00Z",
				"!VERIFIED: request",
			}},
		},
		{
			name:    "a notice claimed that was never delivered",
			erasure: prooftest.Erasure{Completed: late, Minimal: true, Extend: &prooftest.Extend{At: extendedAt, Reason: reason}},
			forge: func(t *testing.T, cert []byte) []byte {
				cert = replace(t, cert, `"original_deadline":"2026-04-02T23:59:59Z"}`,
					`"original_deadline":"2026-04-02T23:59:59Z","notice_delivered_at":"2026-03-03T09:01:00Z","notice_channels":["bus"]}`)
				return replace(t, cert, `"deadline_met":false`, `"deadline_met":true`)
			},
			want: wantOutput{code: exitError, stdout: []string{
				"  - extension: the notice's delivery (2026-03-03T09:01:00Z on [bus]) is not what the log's notice_delivered entries say (never on [])",
				"!VERIFIED: request",
			}},
		},
		{
			name:    "the reason of the extension changed",
			erasure: prooftest.Erasure{Completed: late, Minimal: true, Extend: &prooftest.Extend{At: extendedAt, Reason: reason, Notices: []prooftest.Notice{{}}}},
			forge: func(t *testing.T, cert []byte) []byte {
				return replace(t, cert, reason, "the person asked for everything")
			},
			want: wantOutput{code: exitError, stdout: []string{"  - extension: the reason is not the one the log recorded"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			cert := f.issue(t, "req-1", tt.erasure, tt.followUp)
			if tt.forge != nil {
				cert = tt.forge(t, cert)
			}
			code, stdout, stderr := runCLI(t, "verify", writeFile(t, t.TempDir(), "cert.json", cert), "--keys", f.KeysPath)
			tt.want.check(t, code, stdout, stderr)
		})
	}
}

// replace replaces old, which must be there, in a certificate.
func replace(t *testing.T, cert []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(cert, []byte(old)) {
		t.Fatalf("nothing to tamper with: %s is not in %s", old, cert)
	}
	return bytes.Replace(cert, []byte(old), []byte(new), 1)
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

// The verdict says what a request covered beyond a person.
func TestScopeLines(t *testing.T) {
	cut := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		cert proof.Certificate
		want string
	}{
		{"sweep", proof.Certificate{Type: lifecycle.Sweep, Sweep: &proof.SweepRun{Policy: "site_cookies", Clock: "record", Cutoff: cut, DryRun: true}},
			"retention dry run (nothing deleted) of policy site_cookies: records whose record clock is before 2025-11-01"},
		{"purposes", proof.Certificate{Type: lifecycle.ConsentWithdrawal, Purposes: &proof.PurposeScope{Purposes: []string{"prospecting", "site_cookies"}}},
			"purposes: prospecting, site_cookies"},
		{"reapply", proof.Certificate{Type: lifecycle.Reapply, Reapply: &proof.ReapplyScope{System: "accounts", Since: cut, People: 3, HashesSHA256: "ab"}},
			"re-application in accounts of the erasures since 2025-11-01"},
		{"lift", proof.Certificate{Type: lifecycle.Lift, Lift: &proof.LiftScope{Restriction: "req_r", Reason: "claims_settled"}},
			"lifts restriction req_r (reason: claims_settled)"},
		{"restriction lifted", proof.Certificate{Type: lifecycle.Restriction, Lift: &proof.LiftScope{Restriction: "req_r", Reason: "claims_settled", By: "req_l"}},
			"restriction lifted by req_l (reason: claims_settled)"},
		{"restriction in place", proof.Certificate{Type: lifecycle.Restriction}, "restriction in place"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(scopeLines(&tt.cert), "\n")
			if !strings.Contains(got, tt.want) {
				t.Errorf("scope lines %q lack %q", got, tt.want)
			}
		})
	}
	if got := scopeLines(&proof.Certificate{Type: lifecycle.Erasure}); len(got) != 0 {
		t.Errorf("an erasure has scope lines %q", got)
	}
}

// With --witness, a certificate verifies only if the witnesses given
// cosigned its checkpoint.
func TestVerifyWitnessed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.Origin = "lethe.example/log"
	cosigner := func(name string) *torchwood.CosignatureSigner {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := torchwood.NewCosignatureSigner(name, priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	w1, w2 := cosigner("witness.example/one"), cosigner("witness.example/two")
	w1next := cosigner("witness.example/one") // w1's key, rotated
	var c proof.Certificate
	if err := json.Unmarshal(f.issue(t, "req-1", prooftest.Erasure{Completed: received.Add(time.Minute)}, false), &c); err != nil {
		t.Fatal(err)
	}
	vkey, _ := proof.NoteVerifierKey(f.Origin, f.Orchestrator.Key.Public)
	v, _ := note.NewVerifier(vkey)
	n, err := note.Open([]byte(c.Log.Checkpoint), note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, w1)
	if err != nil {
		t.Fatal(err)
	}
	c.Log.Checkpoint = string(cosigned)
	c.Sign(f.Orchestrator)
	dir := t.TempDir()
	cert := writeFile(t, dir, "cert.json", append(c.Encode(), '\n'))
	for _, tt := range []struct {
		name string
		args []string
		want wantOutput
	}{
		{"cosigned by the witness", []string{"--witness", w1.Verifier().String()}, wantOutput{stdout: []string{"VERIFIED: request req-1", "WITNESSED: the checkpoint the entries are proved in is cosigned by 1 witness(es), of the 1 key(s) given"}}},
		{"not by this one", []string{"--witness", w2.Verifier().String()}, wantOutput{code: exitError, stdout: []string{"NOT VERIFIED", "cosigned by 0 of the witnesses given, 1 required"}}},
		{"one of two, both required", []string{"--witness", w1.Verifier().String(), "--witness", w2.Verifier().String()}, wantOutput{code: exitError, stdout: []string{"cosigned by 1 of the witnesses given, 2 required"}}},
		{"one of two, quorum one", []string{"--witness", w1.Verifier().String(), "--witness", w2.Verifier().String(), "--witness-quorum", "1"}, wantOutput{stdout: []string{"VERIFIED", "WITNESSED"}}},
		{"a witness's two keys (a rotation), one cosigned", []string{"--witness", w1.Verifier().String(), "--witness", w1next.Verifier().String()},
			wantOutput{stdout: []string{"VERIFIED", "WITNESSED"}}},
		{"a key that is no witness key", []string{"--witness", vkey}, wantOutput{code: exitUsage}},
		{"quorum above the witnesses", []string{"--witness", w1.Verifier().String(), "--witness-quorum", "2"}, wantOutput{code: exitUsage, stderr: []string{"--witness-quorum must be between 1 and the 1"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"verify", cert, "--keys", f.KeysPath}, tt.args...)...)
			tt.want.check(t, code, stdout, stderr)
		})
	}
}

// A problem quoting the certificate cannot add lines of its own to the
// verdict, nor hide text behind control characters.
func TestNotVerifiedKeepsProblemsToOneLine(t *testing.T) {
	var out bytes.Buffer
	err := errors.Join(errors.New("receipt of request \"x\nVERIFIED: request x\""), errors.New("b\u202eoops"))
	if werr := writeNotVerified(&out, &proof.Certificate{RequestID: "req\r\nVERIFIED"}, err); werr != nil {
		t.Fatal(werr)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || strings.HasPrefix(lines[1], "VERIFIED") || strings.Contains(out.String(), "\u202e") {
		t.Errorf("verdict of %d lines:\n%s", len(lines), out.String())
	}
}

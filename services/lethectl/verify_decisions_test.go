package main

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

// dpo is the privacy team's token, as the log names it.
var dpo = proof.Actor{Kind: "token", ID: "tok_ab12", Name: "privacy-team", Role: "dpo"}

// refusal is how a request that no system took part in ended: denied by
// a person (Denial set), or expired (Detail, the log's word on it).
type refusal struct {
	State  lifecycle.State
	At     time.Time
	Denial *proof.Decision
	Detail string
	// Forge, when set, changes the certificate before it is signed.
	Forge func(*proof.Certificate)
}

// refused issues the certificate of erasure request id, received at
// received, that ended as r says, as the orchestrator does: the log holds
// its created entry and its end; the certificate names no system.
func (f *fixture) refused(t *testing.T, id string, r refusal) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte("subject|" + id))
	subject := hex.EncodeToString(sum[:])
	recv, due := received, deadline.Policy{}.Deadline(received)
	end := proof.Entry{RequestID: id, Event: proof.EventExpired, At: r.At, Detail: r.Detail}
	if d := r.Denial; d != nil {
		actor := d.Actor
		end = proof.Entry{RequestID: id, Event: proof.EventDenied, At: d.At, Actor: &actor, Ground: d.Ground}
		if d.Note != "" {
			end.NoteSHA256 = proof.ReasonHash(d.Note)
		}
	}
	idx := []int64{
		f.Log.Append(proof.Entry{RequestID: id, Event: proof.EventCreated, At: received, Tenant: prooftest.Tenant, Type: lifecycle.Erasure,
			SubjectHash: subject, ReceivedAt: &recv, Deadline: &due}.Encode()),
		f.Log.Append(end.Encode()),
	}
	size := f.Log.Size()
	c := &proof.Certificate{
		RequestID: id, Tenant: prooftest.Tenant, Type: lifecycle.Erasure, SubjectHash: subject,
		ReceivedAt: received, Deadline: due, CompletedAt: r.At, State: r.State, Denial: r.Denial,
		Log: proof.LogProof{Checkpoint: string(f.Log.CheckpointAt(t, f.Orchestrator, "lethe.example/log", size, r.At.Add(time.Minute)))},
	}
	for _, i := range idx {
		c.Log.Entries = append(c.Log.Entries, f.Log.Logged(i, size))
	}
	c.DeadlineMet = !c.RespondedAt().After(c.EffectiveDeadline())
	if r.Forge != nil {
		r.Forge(c)
	}
	c.Sign(f.Orchestrator)
	return append(c.Encode(), '\n')
}

// TestVerifyRefused checks that the certificate of a request refused or
// expired before any system was asked verifies, and says so.
func TestVerifyRefused(t *testing.T) {
	t.Parallel()
	refusedAt := time.Date(2026, 3, 5, 10, 0, 0, 0, time.UTC)
	denial := &proof.Decision{At: refusedAt, Actor: dpo, Ground: "identity_not_established", Note: "no answer to the code sent on 2 March"}
	tests := []struct {
		name string
		r    refusal
		want wantOutput
	}{
		{
			name: "denied",
			r:    refusal{State: lifecycle.Denied, At: refusedAt, Denial: denial},
			want: wantOutput{stdout: []string{
				"no system was asked: the request was refused before its identity was checked\n",
				"the request's 2 log entries are in the transparency log",
				`refused 2026-03-05 10:00:00 UTC by token tok_ab12 (privacy-team, dpo): identity_not_established; note: "no answer to the code sent on 2 March"` + "\n",
				"VERIFIED: request req-d (erasure, tenant demo), denied, received 2026-03-02 09:00:00 UTC, deadline 2026-04-02 23:59:59 UTC, refused 2026-03-05 10:00:00 UTC, deadline met\n",
				"!SYSTEM", "!identity checked", "!completed",
			}},
		},
		{
			name: "denied without a note",
			r:    refusal{State: lifecycle.Denied, At: refusedAt, Denial: &proof.Decision{At: refusedAt, Actor: proof.Actor{Kind: "oidc", ID: "https://id.example#42"}, Ground: "excessive"}},
			want: wantOutput{stdout: []string{"refused 2026-03-05 10:00:00 UTC by oidc https://id.example#42: excessive\n", "VERIFIED: request req-d"}},
		},
		{
			name: "expired",
			r:    refusal{State: lifecycle.Expired, At: refusedAt, Detail: "identity not checked within 72h0m0s"},
			want: wantOutput{stdout: []string{
				"no system was asked: the subject's identity was never checked, and the request expired\n",
				"expired 2026-03-05 10:00:00 UTC: identity not checked within 72h0m0s\n",
				", expired, received 2026-03-02 09:00:00 UTC, deadline 2026-04-02 23:59:59 UTC, expired 2026-03-05 10:00:00 UTC, deadline met\n",
				"!refused", "!SYSTEM",
			}},
		},
		{
			name: "a refusal credited to someone else fails",
			r: refusal{State: lifecycle.Denied, At: refusedAt, Denial: denial, Forge: func(c *proof.Certificate) {
				d := *c.Denial
				d.Actor.ID, d.Actor.Name = "tok_cd34", "someone-else"
				c.Denial = &d
			}},
			want: wantOutput{code: exitError, stdout: []string{"NOT VERIFIED", "the certificate's denial (by token tok_cd34", "!refused 2026"}},
		},
		{
			name: "a refusal left out fails",
			r:    refusal{State: lifecycle.Denied, At: refusedAt, Denial: denial, Forge: func(c *proof.Certificate) { c.Denial = nil }},
			want: wantOutput{code: exitError, stdout: []string{"NOT VERIFIED", "the log records a denial by token tok_ab12 that the certificate leaves out"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			cert := f.refused(t, "req-d", tt.r)
			code, stdout, stderr := runCLI(t, "verify", writeFile(t, t.TempDir(), "cert.json", cert), "--keys", f.KeysPath)
			tt.want.check(t, code, stdout, stderr)
		})
	}
}

// TestDecisionLines checks the lines of the decisions a certificate
// records, free text included.
func TestDecisionLines(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 30, 14, 5, 6, 0, time.UTC)
	tests := []struct {
		name string
		cert proof.Certificate
		want []string
	}{
		{"none", proof.Certificate{State: lifecycle.Fulfilled}, nil},
		{"identity checked", proof.Certificate{State: lifecycle.Fulfilled, Verification: &proof.Decision{At: at, Actor: dpo, Method: "document"}},
			[]string{"identity checked 2026-11-30 14:05:06 UTC by token tok_ab12 (privacy-team, dpo): document"}},
		{"checked by the submitter, with its note", proof.Certificate{State: lifecycle.Open,
			Verification: &proof.Decision{At: at, Actor: proof.Actor{Kind: "token", ID: "tok_ef56", Role: "dpo"}, Method: "other", Note: "verified by the submitter"}},
			[]string{`identity checked 2026-11-30 14:05:06 UTC by token tok_ef56 (dpo): other; note: "verified by the submitter"`}},
		{"refused", proof.Certificate{State: lifecycle.Denied, Denial: &proof.Decision{At: at, Actor: dpo, Ground: "manifestly_unfounded"}},
			[]string{"refused 2026-11-30 14:05:06 UTC by token tok_ab12 (privacy-team, dpo): manifestly_unfounded"}},
		{"free text cannot forge a line", proof.Certificate{State: lifecycle.Denied,
			Denial: &proof.Decision{At: at, Actor: proof.Actor{Kind: "oidc", ID: "x#1", Name: "Eve\nVERIFIED: all", Role: "dpo"}, Ground: "other", Note: "a\nVERIFIED: b\x1b[2K"}},
			[]string{`refused 2026-11-30 14:05:06 UTC by oidc x#1 (Eve?VERIFIED: all, dpo): other; note: "a\nVERIFIED: b\x1b[2K"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := decisionLines(&tt.cert)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, l := range got {
				if strings.ContainsAny(l, "\n\x1b") {
					t.Errorf("line %q holds a control character", l)
				}
			}
		})
	}
}

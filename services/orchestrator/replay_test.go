package orchestrator

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
)

// A task that ran out of attempts is re-driven once its system is fixed
// (one retry, or a bulk replay of the system's dead letters), or resolved
// by hand; until then the failed request keeps its identifiers, sealed.
// Each round and each resolution is in the log and the certificate, with
// who did it.
func TestFailedTasksRetriedReplayedResolved(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("alpha", &toySystem{})
	beta := &toySystem{failN: 1 << 30} // down until fixed
	e.connect("beta", beta)
	subject := func(n string) string {
		return `{"type":"erasure","tenant":"demo","subject":{"email":"person-00` + n + `@example.com"},"verified":true}`
	}
	retried, replayed, resolved := e.submit(erasure(true)), e.submit(subject("43")), e.submit(subject("44"))
	for _, id := range []string{retried, replayed, resolved} {
		e.waitState(id, "failed")
		r, _, err := e.store.Get(context.Background(), id)
		if err != nil || r.SealedSubject == nil {
			t.Fatalf("failed request %s keeps no identifiers: %v", id, err)
		}
	}
	if c := counter(t, e.reg, "lethe_orchestrator_failed_requests_unresolved", nil); c != 3 {
		t.Errorf("failed unresolved = %v, want 3", c)
	}
	deadLetters := func(query string) []string {
		t.Helper()
		var out struct {
			DeadLetters []struct {
				RequestID string `json:"request_id"`
			} `json:"deadletters"`
		}
		if err := json.Unmarshal(e.raw("GET", "/v1/deadletters"+query), &out); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, d := range out.DeadLetters {
			ids = append(ids, d.RequestID)
		}
		slices.Sort(ids)
		return ids
	}
	want := []string{retried, replayed, resolved}
	slices.Sort(want)
	if got := deadLetters("?system=beta"); !slices.Equal(got, want) {
		t.Fatalf("dead letters of beta %v, want %v", got, want)
	}
	if got := deadLetters("?system=alpha"); len(got) != 0 {
		t.Errorf("dead letters of alpha %v", got)
	}

	// Refusals change nothing.
	for _, tt := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"retry an answered task", "POST", "/v1/requests/" + retried + "/tasks/alpha/retry", "", http.StatusConflict},
		{"retry an unknown system", "POST", "/v1/requests/" + retried + "/tasks/gamma/retry", "", http.StatusNotFound},
		{"retry an unknown request", "POST", "/v1/requests/req_nope/tasks/beta/retry", "", http.StatusNotFound},
		{"retry with a body", "POST", "/v1/requests/" + retried + "/tasks/beta/retry", `{"now":true}`, http.StatusBadRequest},
		{"resolve without a note", "POST", "/v1/requests/" + resolved + "/tasks/beta/resolve", `{"note":"  "}`, http.StatusBadRequest},
		{"resolve with no body", "POST", "/v1/requests/" + resolved + "/tasks/beta/resolve", ``, http.StatusBadRequest},
		{"replay without a system", "POST", "/v1/deadletters/replay", `{}`, http.StatusBadRequest},
		{"replay since a bad time", "POST", "/v1/deadletters/replay", `{"system":"beta","since":"yesterday"}`, http.StatusBadRequest},
		{"list since a bad time", "GET", "/v1/deadletters?since=yesterday", "", http.StatusBadRequest},
	} {
		if code, out := e.do(tt.method, tt.path, tt.body); code != tt.want {
			t.Errorf("%s = %d %v, want %d", tt.name, code, out, tt.want)
		}
	}
	if got := deadLetters(""); !slices.Equal(got, want) {
		t.Fatalf("after refusals, dead letters %v, want %v", got, want)
	}

	// Fixed by hand in the system: resolved, with a note.
	if code, out := e.do("POST", "/v1/requests/"+resolved+"/tasks/beta/resolve", `{"note":"erased from the replica by hand, ticket OPS-12"}`); code != 200 || out["state"] != "fulfilled" {
		t.Fatalf("resolve = %d %v", code, out)
	}
	// The system fixed: one retry, then a bulk replay of the rest.
	beta.mu.Lock()
	beta.failN = 0
	beta.mu.Unlock()
	if code, out := e.do("POST", "/v1/requests/"+retried+"/tasks/beta/retry", ""); code != 200 {
		t.Fatalf("retry = %d %v", code, out)
	}
	e.waitState(retried, "fulfilled")
	if code, out := e.do("POST", "/v1/deadletters/replay", `{"system":"beta"}`); code != 200 || out["retried"] != 1.0 {
		t.Fatalf("replay = %d %v", code, out)
	}
	e.waitState(replayed, "fulfilled")

	for id, outcome := range map[string]lifecycle.Outcome{retried: lifecycle.Erased, replayed: lifecycle.Erased, resolved: lifecycle.Resolved} {
		c, err := e.certificate(id)
		if err != nil {
			t.Fatalf("certificate of %s: %v", id, err)
		}
		var beta proof.SystemResult
		for _, s := range c.Systems {
			if s.System == "beta" {
				beta = s
			}
		}
		if c.State != lifecycle.Fulfilled || beta.Outcome != outcome {
			t.Errorf("certificate of %s: state %s, beta %+v", id, c.State, beta)
		}
		// The log shows the failed round, then the retry or resolution,
		// with who did it.
		events := map[string]*proof.Actor{}
		for _, le := range c.Log.Entries {
			en, _ := proof.DecodeEntry(le.Entry)
			if en.System == "beta" || en.Event == proof.EventFailed {
				events[en.Event] = en.Actor
			}
		}
		step := proof.EventTaskRetried
		if id == resolved {
			step = proof.EventTaskResolved
		}
		if _, failed := events[proof.EventDeadLetter]; !failed {
			t.Errorf("%s: the log lacks the dead letter", id)
		}
		if a := events[step]; a == nil || a.Role != "admin" {
			t.Errorf("%s: the log's %s entry names no actor: %v", id, step, a)
		}
		r, _, err := e.store.Get(context.Background(), id)
		if err != nil || r.SealedSubject != nil {
			t.Errorf("%s keeps its identifiers once fulfilled: %v", id, err)
		}
	}
	if c := counter(t, e.reg, "lethe_orchestrator_failed_requests_unresolved", nil); c != 0 {
		t.Errorf("failed unresolved = %v, want 0", c)
	}
	if got := deadLetters(""); len(got) != 0 {
		t.Errorf("dead letters left: %v", got)
	}
	e.logs.NoneOf(t, subjectEmail, "person-0043@example.com", "person-0044@example.com")
}

package devstack

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/emailanalytics"
)

// TestRestrictionEndToEnd: a restriction of processing (Art. 18) keeps
// the person's data in every system and marks it so that an enrichment
// is refused; its certificate verifies. Its lift is a request of its own
// whose certificate verifies and names the restriction; the
// restriction's certificate, issued again, names the lift; the person
// may then be processed again. A lift is refused for what is no
// restriction, without a known reason, and a second time.
func TestRestrictionEndToEnd(t *testing.T) { matrix(t, restrictionEndToEnd) }

func restrictionEndToEnd(t *testing.T, h *harness) {
	const email = "person-0006@example.com"
	enrich := func() bool {
		t.Helper()
		stored, err := h.s.EmailAnalytics.Enrich(context.Background(), "demo", email, emailanalytics.Interest{Topic: "AI", Preference: "weekly", At: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return stored
	}
	before := h.rowsMentioning(email)
	code, out := h.call("POST", h.s.API+"/v1/requests", `{"type":"restriction","tenant":"demo","subject":{"email":"`+email+`"},"verified":true}`)
	if code != http.StatusAccepted {
		t.Fatalf("restriction = %d %v", code, out)
	}
	id := out["id"].(string)
	view := h.waitState(id, "fulfilled")
	ts := tasks(view)
	if len(ts) != len(demoSystems) {
		t.Errorf("the restriction went to %d systems, want every one (%d)", len(ts), len(demoSystems))
	}
	for sys, k := range ts {
		if o := k["outcome"]; o != string(lifecycle.Restricted) && o != string(lifecycle.NotFound) {
			t.Errorf("%s answered the restriction %v", sys, o)
		}
	}
	if n := ts["accounts"]["counts"].(map[string]any)["profile"]; n == nil {
		t.Errorf("accounts restricted %v, want the profile counted", ts["accounts"]["counts"])
	}
	if after := h.rowsMentioning(email); !slices.Equal(before, after) {
		t.Errorf("a restriction changed what is held: before %v, after %v", before, after)
	}
	if enrich() {
		t.Error("an enrichment of a restricted person was stored")
	}
	c, _, _ := h.verifyCertificate(id, email)
	if c.Type != lifecycle.Restriction || c.Lift != nil {
		t.Errorf("the restriction's certificate: type %s, lift %+v", c.Type, c.Lift)
	}

	lift := func(of, body string) (int, map[string]any) {
		return h.call("POST", h.s.API+"/v1/requests/"+of+"/lift", body)
	}
	code, out = h.call("POST", h.s.API+"/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@example.com"}}`)
	if code != http.StatusAccepted {
		t.Fatalf("erasure = %d %v", code, out)
	}
	erasure := out["id"].(string)
	for _, bad := range []struct {
		of, body string
		want     int
	}{
		{id, `{"reason":"because"}`, http.StatusBadRequest},
		{id, `{}`, http.StatusBadRequest},
		{id, `{"reason":"claims_settled","note":"x"}`, http.StatusBadRequest},
		{"req_nope", `{"reason":"claims_settled"}`, http.StatusNotFound},
		{erasure, `{"reason":"claims_settled"}`, http.StatusBadRequest},
	} {
		if code, out := lift(bad.of, bad.body); code != bad.want {
			t.Errorf("lift %s %s = %d %v, want %d", bad.of, bad.body, code, out, bad.want)
		}
	}
	code, out = lift(id, `{"reason":"claims_settled"}`)
	if code != http.StatusAccepted {
		t.Fatalf("lift = %d %v", code, out)
	}
	liftID := out["id"].(string)
	if code, out := lift(id, `{"reason":"claims_settled"}`); code != http.StatusConflict {
		t.Errorf("a second lift = %d %v, want 409", code, out)
	}
	view = h.waitState(liftID, "fulfilled")
	for sys, k := range tasks(view) {
		if k["outcome"] != string(lifecycle.Lifted) {
			t.Errorf("%s answered the lift %v", sys, k["outcome"])
		}
	}
	lc, _, _ := h.verifyCertificate(liftID, email)
	if lc.Type != lifecycle.Lift || lc.Lift == nil || lc.Lift.Restriction != id || lc.Lift.Reason != "claims_settled" {
		t.Errorf("the lift's certificate: type %s, lift %+v", lc.Type, lc.Lift)
	}
	rc, _, _ := h.verifyCertificate(id, email)
	if rc.Lift == nil || rc.Lift.By != liftID {
		t.Errorf("the restriction's certificate after the lift names %+v, want lift %s", rc.Lift, liftID)
	}
	if _, out := h.call("GET", h.s.API+"/v1/requests/"+id, ""); out["lifted_by"] != liftID {
		t.Errorf("the restriction shows lifted_by %v", out["lifted_by"])
	}
	if !enrich() {
		t.Error("an enrichment after the lift was refused")
	}
	h.logs.NoneOf(t, email)
}

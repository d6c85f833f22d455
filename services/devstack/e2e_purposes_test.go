package devstack

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/services/emailanalytics"
)

// TestPurposesEndToEnd: a consent withdrawal and an objection erase the
// data of their purposes only, in the systems those purposes name; the
// account and its invoices remain; a later enrichment of the person is
// refused; each certificate names the purposes and verifies. A purpose
// that cannot be withdrawn from, or objected to, is refused at once.
func TestPurposesEndToEnd(t *testing.T) { matrix(t, purposesEndToEnd) }

func purposesEndToEnd(t *testing.T, h *harness) {
	const email = "person-0004@example.com"
	submit := func(typ, purposes string) (int, map[string]any) {
		return h.call("POST", h.s.API+"/v1/requests", `{"type":"`+typ+`","tenant":"demo","subject":{"email":"`+email+`"},"verified":true,"purposes":`+purposes+`}`)
	}
	for _, bad := range []struct{ typ, purposes, want string }{
		{"consent_withdrawal", `["audience_measurement"]`, "not based on consent"},
		{"objection", `["service_accounts"]`, "legitimate or public interest only"},
		{"objection", `["prospecting"]`, "withdraw it instead"},
		{"consent_withdrawal", `["birthdays"]`, "no purpose of tenant demo"},
		{"consent_withdrawal", `[]`, "names the purposes it covers"},
		{"erasure", `["prospecting"]`, "purposes are for a consent_withdrawal or an objection only"},
	} {
		code, out := submit(bad.typ, bad.purposes)
		if code != http.StatusBadRequest || !contains(out["error"], bad.want) {
			t.Errorf("%s %s = %d %v, want 400 saying %q", bad.typ, bad.purposes, code, out, bad.want)
		}
	}
	before := h.rowsMentioning(email)

	code, out := submit("consent_withdrawal", `["prospecting","site_cookies"]`)
	if code != http.StatusAccepted {
		t.Fatalf("consent withdrawal = %d %v", code, out)
	}
	view := h.waitState(out["id"].(string), "fulfilled")
	ts := tasks(view)
	if len(ts) != 1 || ts["emailanalytics"] == nil {
		t.Fatalf("the withdrawal went to %v, want emailanalytics only", ts)
	}
	counts := ts["emailanalytics"]["counts"].(map[string]any)
	if counts["interests"] == nil || counts["email_events"] != nil {
		t.Errorf("the withdrawal erased %v, want interests and cookie consents only", counts)
	}
	c, _, _ := h.verifyCertificate(out["id"].(string), email)
	if c.Purposes == nil || !slices.Equal(c.Purposes.Purposes, []string{"prospecting", "site_cookies"}) ||
		!slices.Equal(c.Purposes.Systems["emailanalytics"], []string{"cookies", "prospecting"}) {
		t.Errorf("the certificate's purposes: %+v", c.Purposes)
	}
	stored, err := h.s.EmailAnalytics.Enrich(context.Background(), "demo", email, emailanalytics.Interest{Topic: "AI", Preference: "weekly", At: time.Now()})
	if err != nil || stored {
		t.Errorf("an enrichment after the withdrawal: stored %v (%v), want refused", stored, err)
	}

	code, out = submit("objection", `["audience_measurement"]`)
	if code != http.StatusAccepted {
		t.Fatalf("objection = %d %v", code, out)
	}
	view = h.waitState(out["id"].(string), "fulfilled")
	if ts := tasks(view); len(ts) != 1 || ts["accounts"]["counts"].(map[string]any)["login_history"] == nil {
		t.Errorf("the objection answered %v, want accounts' login history", ts)
	}
	h.verifyCertificate(out["id"].(string), email)
	// The account and the invoices remain.
	after := h.rowsMentioning(email)
	for _, place := range []string{"accounts/accounts.db:users", "billing/billing.db:invoices"} {
		if slices.Contains(before, place) && !slices.Contains(after, place) {
			t.Errorf("%s went: a withdrawal or objection left the account and invoices (before %v, after %v)", place, before, after)
		}
	}
	h.logs.NoneOf(t, email)
}

func contains(v any, sub string) bool {
	s, _ := v.(string)
	return sub != "" && strings.Contains(s, sub)
}

package orchestrator

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
)

// A restriction then its lift, with evidence of both: each has a
// certificate that verifies; the restriction's, issued again once the
// lift is done, names it; of two lifts at once one is opened; and a
// certificate whose lift was changed does not verify, even re-signed:
// the log says otherwise.
func TestRestrictionThenLift(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	id := e.submit(`{"type":"restriction","tenant":"demo","subject":{"email":"person-0001@example.com"},"verified":true}`)
	view := e.waitState(id, "fulfilled")
	for sys, k := range tasksBySystem(view) {
		if k["outcome"] != string(lifecycle.Restricted) {
			t.Errorf("%s answered %v", sys, k["outcome"])
		}
	}
	if c, err := e.certificate(id); err != nil || c.Lift != nil {
		t.Fatalf("the restriction's certificate: %v, lift %+v", err, c.Lift)
	}

	// Two lifts at once: one is opened, the other told it is lifted.
	var wg sync.WaitGroup
	codes := make([]int, 2)
	ids := make([]string, 2)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, b := e.send(e.token, "POST", "/v1/requests/"+id+"/lift", `{"reason":"accuracy_verified"}`)
			var out map[string]any
			json.Unmarshal(b, &out)
			codes[i] = code
			ids[i], _ = out["id"].(string)
		}()
	}
	wg.Wait()
	if codes[0]+codes[1] != http.StatusAccepted+http.StatusConflict {
		t.Fatalf("two lifts at once answered %v, want one 202 and one 409", codes)
	}
	lift := ids[0] + ids[1]
	view = e.waitState(lift, "fulfilled")
	for sys, k := range tasksBySystem(view) {
		if k["outcome"] != string(lifecycle.Lifted) {
			t.Errorf("%s answered the lift %v", sys, k["outcome"])
		}
	}
	lc, err := e.certificate(lift)
	if err != nil || lc.Lift == nil || lc.Lift.Restriction != id || lc.Lift.Reason != "accuracy_verified" {
		t.Fatalf("the lift's certificate: %v, %+v", err, lc.Lift)
	}
	rc, err := e.certificate(id)
	if err != nil || rc.Lift == nil || rc.Lift.By != lift {
		t.Fatalf("the restriction's certificate after the lift: %v, %+v", err, rc.Lift)
	}

	var keys proof.KeySet
	if err := json.Unmarshal(e.raw("GET", "/v1/keys"), &keys); err != nil {
		t.Fatal(err)
	}
	signer := e.orchestratorSigner()
	for _, tt := range []struct {
		name   string
		of     string
		change func(c *proof.Certificate)
	}{
		{"restriction shown in place", id, func(c *proof.Certificate) { c.Lift = nil }},
		{"restriction lifted by another", id, func(c *proof.Certificate) { c.Lift.By = "req_other" }},
		{"lift of another restriction", lift, func(c *proof.Certificate) { c.Lift.Restriction = "req_other" }},
		{"lift for another reason", lift, func(c *proof.Certificate) { c.Lift.Reason = "subject_request" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c proof.Certificate
			if err := json.Unmarshal(e.raw("GET", "/v1/requests/"+tt.of+"/certificate"), &c); err != nil {
				t.Fatal(err)
			}
			tt.change(&c)
			c.Sign(signer)
			if _, err := proof.Verify(c.Encode(), keys); err == nil || !strings.Contains(err.Error(), "lift") {
				t.Errorf("a re-signed certificate with its lift changed: %v", err)
			}
		})
	}
}

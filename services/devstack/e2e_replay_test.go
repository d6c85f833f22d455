package devstack

import (
	"net/http"
	"testing"
	"time"
)

// A system down long enough for its task to run out of attempts: the
// request ends failed; the stack restarts on the same data; the request is
// still failed and keeps what a retry needs; one retry of the task, and
// the system back, end it with a certificate that verifies. (The system
// comes back after the retry: it would otherwise take the attempts still
// waiting on the bus and answer late, which ends the request too, before
// anyone retries.)
func TestFailedThenRetriedAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	email := "person-0006@example.com"
	h := start(t, func(c *Config) {
		c.DataDir, c.Without = dir, []string{"recordings"}
		c.Orchestrator.MaxAttempts, c.Orchestrator.RetryInitial, c.Orchestrator.RetryMax = 2, 200*time.Millisecond, 400*time.Millisecond
	})
	_, out := h.call("POST", h.s.API+"/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"`+email+`"},"verified":true}`)
	id := out["id"].(string)
	view := h.waitState(id, "failed")
	if tasks(view)["recordings"]["state"] != "dead_letter" {
		t.Fatalf("recordings' task: %v", tasks(view)["recordings"])
	}
	h.stop()

	h = start(t, func(c *Config) { c.DataDir, c.Without = dir, []string{"recordings"} })
	if _, view := h.call("GET", h.s.API+"/v1/requests/"+id, ""); view["state"] != "failed" {
		t.Fatalf("after the restart the request is %v", view["state"])
	}
	if code, out := h.call("POST", h.s.API+"/v1/requests/"+id+"/tasks/recordings/retry", ""); code != http.StatusOK {
		t.Fatalf("retry = %d %v", code, out)
	}
	h.s.StartConnector("recordings")
	view = h.waitState(id, "partially_retained", "fulfilled")
	if tasks(view)["recordings"]["outcome"] != "erased" {
		t.Errorf("recordings after the retry: %v", tasks(view)["recordings"])
	}
	h.verifyCertificate(id, email)
	h.logs.NoneOf(t, email)
}

package orchestrator

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// A store that refuses writes (a real full SQLite database, capped with
// max_page_count) is a 503 with Retry-After that changes nothing, not a
// 500; reads go on; the loops back off; once there is room again, the
// work resumes by itself.
func TestFullStore(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	st := e.store.(*store.SQLite)
	ctx := context.Background()
	first := e.submit(erasure(true))
	e.waitState(first, "fulfilled")

	if err := st.SetMaxSize(ctx, 1); err != nil { // no page more than it has
		t.Fatal(err)
	}
	t.Cleanup(func() { st.SetMaxSize(context.Background(), 0) })
	var accepted []string
	full := false
	for i := 0; i < 500 && !full; i++ {
		code, h, body := e.send(e.token, "POST", "/v1/requests", erasure(true))
		switch code {
		case http.StatusAccepted:
			accepted = append(accepted, string(body))
		case http.StatusServiceUnavailable:
			full = true
			if h.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After: %s", body)
			}
		default:
			t.Fatalf("submit on a filling store = %d %s", code, body)
		}
	}
	if !full {
		t.Fatal("the capped store never refused a write")
	}
	t.Logf("%d requests accepted before the store was full", len(accepted))
	// Reads go on.
	if code, out := e.do("GET", "/v1/requests/"+first, ""); code != 200 || out["state"] != "fulfilled" {
		t.Errorf("read on a full store = %d %v", code, out)
	}
	// Nothing half-written: the refused request is nowhere.
	stats, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range stats.Requests {
		total += n
	}
	if total != 1+len(accepted) {
		t.Errorf("%d requests stored, want %d (the first and the %d accepted)", total, 1+len(accepted), len(accepted))
	}

	// Room again: new requests are taken, and those accepted before end
	// without anyone re-driving them.
	if err := st.SetMaxSize(ctx, 0); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(30 * time.Second)
	for {
		_, out := e.do("GET", "/v1/requests?state=fulfilled&limit=500", "")
		if reqs, _ := out["requests"].([]any); len(reqs) == 1+len(accepted) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("after room returned, not every accepted request ended: %v", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.waitState(e.submit(erasure(true)), "fulfilled")
	e.logs.NoneOf(t, subjectEmail)
}

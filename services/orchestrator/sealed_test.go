package orchestrator

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lethe-dev/lethe/pkg/connector"
)

// exporter exports what it holds of the subject: their email and user id.
type exporter struct{ toySystem }

func (s *exporter) Export(ctx context.Context, t connector.Task) (connector.Result, error) {
	return connector.Result{Outcome: connector.Exported, Counts: map[string]int64{"profile": 1},
		Export: []byte(`{"account":{"profile":[{"email":"` + t.Subject.Email + `","user_id":"` + t.Subject.UserID + `"}]}}`)}, nil
}

// A reader of every subject of the bus (a subscriber with read rights, a
// broker's operator) sees no identifier: tasks carry the subject sealed to
// their connector, receipts the export's key sealed to the orchestrator
// (the export itself is in the blob store, encrypted), notices
// the subject sealed to the mailer.
func TestBusCarriesNoIdentifier(t *testing.T) {
	e := newEnv(t, nil)
	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	var seen [][]byte
	sub, err := nc.Subscribe("lethe.>", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, append([]byte(m.Subject+" "), m.Data...))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	nc.Flush()

	e.connect("alpha", &exporter{})
	e.connect("beta", &toySystem{})
	export := e.submit(`{"type":"export","tenant":"demo","subject":{"email":"` + subjectEmail + `","user_id":"user-0042"},"verified":true}`)
	erased := e.submit(erasure(true))
	extended := e.submit(erasure(false))
	if code, out := e.do("POST", "/v1/requests/"+extended+"/extend", `{"reason":"Backups must be restored first."}`); code != 200 {
		t.Fatalf("extend = %d %v", code, out)
	}
	e.waitState(export, "fulfilled")
	e.waitState(erased, "fulfilled")
	for end := time.Now().Add(10 * time.Second); counter(t, e.reg, "lethe_orchestrator_notice_deliveries_total", map[string]string{"channel": "bus", "result": "published"}) < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the notice was not published")
		}
	}
	nc.Flush()
	mu.Lock()
	defer mu.Unlock()
	kinds := map[string]bool{}
	for _, m := range seen {
		subject, _, _ := bytes.Cut(m, []byte(" "))
		kinds[string(bytes.SplitN(subject, []byte("."), 3)[1])] = true
		for _, id := range []string{subjectEmail, "user-0042"} {
			if bytes.Contains(bytes.ToLower(m), []byte(id)) {
				t.Errorf("%s carries %q in clear", subject, id)
			}
		}
	}
	for _, k := range []string{"task", "receipt", "notice"} {
		if !kinds[k] {
			t.Errorf("no %s message seen (saw %v): the check proves nothing", k, kinds)
		}
	}
	// The export itself reached the orchestrator, and opens there.
	if _, _, files := e.download(e.token, "/v1/requests/"+export+"/export"); !bytes.Contains(files["systems/alpha.json"], []byte(subjectEmail)) {
		t.Errorf("the export does not hold the data the system exported: %s", files["systems/alpha.json"])
	}
}

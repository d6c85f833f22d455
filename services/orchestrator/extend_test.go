package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// receivedErasure is an erasure of the test subject received at t.
func receivedErasure(t time.Time) string {
	return `{"type":"erasure","tenant":"demo","subject":{"email":"` + subjectEmail + `"},"received_at":"` + t.UTC().Format(time.RFC3339) + `"}`
}

// noticeSink plays the mailer: it keeps the extension notices published on
// the bus, each with its subject opened (it was sealed to the mailer), and
// acknowledges each.
func (e *env) noticeSink() func() []*lethev1.ExtensionNotice {
	e.t.Helper()
	var mu sync.Mutex
	var got []*lethev1.ExtensionNotice
	ctx, cancel := context.WithCancel(context.Background())
	b := e.bus("mailer")
	signer := e.signer(proof.Mailer)
	seal, err := connector.SealingKey(filepath.Join(e.dir, proof.Mailer))
	if err != nil {
		e.t.Fatal(err)
	}
	go b.Consume(ctx, events.TopicNotices, "mailer", func(ctx context.Context, m *bus.Message) error {
		n := &lethev1.ExtensionNotice{}
		if err := events.Decode(m, n, events.TypeNoticeExtension); err != nil {
			return err
		}
		if n.Subject != nil || bytes.Contains(m.Data, []byte(subjectEmail)) {
			e.t.Errorf("a notice on the bus names its subject in clear: %v", n)
		}
		s, err := seal.OpenSubject(n.GetSealedSubject())
		if err != nil {
			e.t.Errorf("the notice's subject is not sealed to the mailer: %v", err)
		}
		n.Subject = s
		ack := &lethev1.NoticeDelivered{NoticeId: strings.TrimPrefix(m.ID, "notice:"), RequestId: n.GetRequestId(), DeliveredAt: timestamppb.Now()}
		if err := proof.SignNoticeDelivered(signer, ack); err != nil {
			return err
		}
		am, err := events.NoticeDeliveredMessage(ack, "test", time.Now())
		if err != nil {
			return err
		}
		if err := b.Publish(ctx, events.TopicNoticeDelivered, am); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, n)
		return nil
	})
	e.t.Cleanup(cancel)
	return func() []*lethev1.ExtensionNotice {
		mu.Lock()
		defer mu.Unlock()
		return append([]*lethev1.ExtensionNotice(nil), got...)
	}
}

// Art. 12(3): an extension is allowed once, before the original deadline,
// with a reason; every refusal is a 4xx that changes nothing.
func TestExtension(t *testing.T) {
	// Unverified requests wait 100 days here: the late one must still be
	// pending at its original deadline, not expired.
	tenants, err := deadline.ParseTenants([]byte("default: {verification_expiry: 2400h}"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Deadlines = tenants })
	notices := e.noticeSink()
	received := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	id := e.submit(receivedErasure(received))
	late := e.submit(receivedErasure(time.Now().UTC().AddDate(0, -2, 0)))

	// The arithmetic is pkg/deadline's, tested there date by date.
	wantOriginal, wantExtended := deadline.OneMonth(received), deadline.Policy{}.Extended(received)
	tests := []struct {
		name, id, body string
		want           int
		code           string
	}{
		{"no reason", id, `{}`, 400, ""},
		{"empty reason", id, `{"reason":""}`, 400, ""},
		{"blank reason", id, `{"reason":"  \n "}`, 400, ""},
		{"reason too long", id, `{"reason":"` + strings.Repeat("x", 2001) + `"}`, 400, ""},
		{"reason not a string", id, `{"reason":42}`, 400, ""},
		{"unknown field", id, `{"reason":"volume","days":60}`, 400, ""},
		{"not JSON", id, `reason=volume`, 400, ""},
		{"unknown request", "req_nope", `{"reason":"volume"}`, 404, ""},
		{"past the original deadline", late, `{"reason":"volume"}`, 409, "too_late"},
		{"allowed once", id, `{"reason":"Twelve systems hold the data; the archive restore takes weeks."}`, 200, ""},
		{"twice", id, `{"reason":"again"}`, 409, "already_extended"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, prev := e.do("GET", "/v1/requests/"+tt.id, "")
			code, out := e.do("POST", "/v1/requests/"+tt.id+"/extend", tt.body)
			if code != tt.want || (tt.code != "" && out["code"] != tt.code) {
				t.Fatalf("= %d %v, want %d %s", code, out, tt.want, tt.code)
			}
			if code >= 400 {
				if out["error"] == "" || strings.Contains(out["error"].(string), subjectEmail) {
					t.Fatalf("error %q", out["error"])
				}
				_, now := e.do("GET", "/v1/requests/"+tt.id, "")
				if tt.want != 404 && (now["deadline"] != prev["deadline"] || now["extended_at"] != prev["extended_at"]) {
					t.Fatalf("a refusal changed the request: %v -> %v", prev, now)
				}
			}
		})
	}

	_, view := e.do("GET", "/v1/requests/"+id, "")
	original, _ := time.Parse(time.RFC3339, view["original_deadline"].(string))
	extended, _ := time.Parse(time.RFC3339, view["deadline"].(string))
	if !original.Equal(wantOriginal) {
		t.Errorf("original deadline %v, want %v", original, wantOriginal)
	}
	if !extended.Equal(wantExtended) || !extended.After(original.AddDate(0, 1, 27)) {
		t.Errorf("extended deadline %v, want %v, two months after %v", extended, wantExtended, original)
	}

	// The notice goes out on the bus once, and stays sent after a restart.
	for end := time.Now().Add(20 * time.Second); len(notices()) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("no extension notice on the bus")
		}
	}
	e.shutdown()
	e.start()
	time.Sleep(10 * e.cfg.ScanInterval)
	got := notices()
	if len(got) != 1 {
		t.Fatalf("%d notices published, want exactly 1", len(got))
	}
	n := got[0]
	if n.GetRequestId() != id || n.GetSubject().GetEmail() != subjectEmail || n.GetReason() == "" ||
		!n.GetDeadline().AsTime().Equal(extended) || !n.GetOriginalDeadline().AsTime().Equal(original) {
		t.Fatalf("notice %v", n)
	}
	if c := counter(t, e.reg, "lethe_orchestrator_extensions_total", map[string]string{"type": "erasure"}); c != 0 {
		t.Errorf("extensions counter after a restart = %v, want 0 (it counts this process's)", c)
	}

	// The evidence: the delivery is logged and in the certificate.
	e.do("POST", "/v1/requests/"+id+"/verify", `{"method":"document"}`)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	e.waitState(id, "fulfilled")
	// The mailer's acknowledgement may be recorded after the request ended
	// (it crossed the restart): the certificate is then issued again.
	var c *proof.Certificate
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if c, err = e.certificate(id); err != nil {
			t.Fatalf("certificate: %v", err)
		}
		if c.Extension == nil || c.Extension.NoticeDeliveredAt != nil || time.Now().After(end) {
			break
		}
	}
	x := c.Extension
	if x == nil || x.NoticeDeliveredAt == nil || strings.Join(x.NoticeChannels, ",") != "bus" || !x.OriginalDeadline.Equal(original) ||
		!c.Deadline.Equal(extended) || x.Reason != n.GetReason() || !c.DeadlineMet {
		t.Fatalf("certificate extension %+v, deadline %v, met %v", x, c.Deadline, c.DeadlineMet)
	}
	delivered := 0
	for _, le := range c.Log.Entries {
		en, _ := proof.DecodeEntry(le.Entry)
		if en.Event == proof.EventNoticeDelivered {
			delivered++
		}
		if en.Event == proof.EventExtended && (strings.Contains(string(le.Entry), "archive") || en.ReasonSHA256 != proof.ReasonHash(n.GetReason())) {
			t.Errorf("the log's extension entry %s should hold the reason's hash only", le.Entry)
		}
	}
	if delivered != 1 {
		t.Errorf("%d notice deliveries logged, want 1", delivered)
	}
	page := string(e.raw("GET", "/v1/requests/"+id+"/certificate.html"))
	for _, want := range []string{"Verified", "extended from", "the archive restore takes weeks", "Person told of it", "(bus)"} {
		if !strings.Contains(page, want) {
			t.Errorf("the certificate page lacks %q", want)
		}
	}
	if code, out := e.do("POST", "/v1/requests/"+id+"/extend", `{"reason":"more"}`); code != 409 {
		t.Errorf("extending an ended request = %d %v", code, out)
	}
	e.logs.NoneOf(t, subjectEmail)
}

// A webhook that fails is tried again; its notice is signed by the
// orchestrator's key.
func TestExtensionNoticeWebhook(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	var headers []http.Header
	calls := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		bodies, headers = append(bodies, b), append(headers, r.Header.Clone())
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	e := newEnv(t, func(c *Config) { c.NoticeWebhook = hook.URL + "/lethe/notices" })
	id := e.submit(erasure(false))
	if code, out := e.do("POST", "/v1/requests/"+id+"/extend", `{"reason":"Backups must be restored first."}`); code != 200 {
		t.Fatalf("extend = %d %v", code, out)
	}
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(bodies)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the webhook never got the notice")
		}
	}
	time.Sleep(10 * e.cfg.ScanInterval)
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 || calls != 2 {
		t.Fatalf("%d deliveries in %d calls, want 1 in 2 (one failure, one retry)", len(bodies), calls)
	}
	h := headers[0]
	if h.Get("ce-type") != events.TypeNoticeExtension || h.Get("ce-id") != "notice:extension:"+id || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
	var keys proof.KeySet
	if err := json.Unmarshal(e.raw("GET", "/v1/keys"), &keys); err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyNotice(keys, h.Get("Lethe-Signature"), bodies[0], time.Now()); err != nil {
		t.Errorf("the notice's signature: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(bodies[0], &body); err != nil || body["requestId"] != id || body["reason"] != "Backups must be restored first." {
		t.Errorf("body %s (%v)", bodies[0], err)
	}
	for _, tt := range []struct{ result string }{{"delivered"}, {"failed"}} {
		if c := waitCounter(t, e.reg, "lethe_orchestrator_notice_deliveries_total", map[string]string{"channel": "webhook", "result": tt.result}, 1); c != 1 {
			t.Errorf("webhook %s = %v, want 1", tt.result, c)
		}
	}
	// The webhook's 2xx is delivery; the bus, where no mailer runs here,
	// only took the notice.
	for ch, want := range map[string]float64{"webhook": 0, "bus": 1} {
		if c := counter(t, e.reg, "lethe_orchestrator_notices_undelivered", map[string]string{"channel": ch}); c != want {
			t.Errorf("undelivered notices on %s = %v, want %v", ch, c, want)
		}
	}
	if c := waitCounter(t, e.reg, "lethe_orchestrator_notice_deliveries_total", map[string]string{"channel": "bus", "result": "published"}, 1); c != 1 {
		t.Errorf("bus published = %v, want 1", c)
	}

	// An acknowledgement counts only when the mailer's key signed it: one
	// signed by a connector's key is refused; the mailer's is delivery.
	acknowledge := func(signer *proof.Signer) {
		ack := &lethev1.NoticeDelivered{NoticeId: "extension:" + id, RequestId: id, DeliveredAt: timestamppb.Now()}
		if err := proof.SignNoticeDelivered(signer, ack); err != nil {
			t.Fatal(err)
		}
		m, err := events.NoticeDeliveredMessage(ack, "test", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		m.ID += "-" + signer.Key.ID // not de-duplicated by the broker
		if err := e.bus("mailer").Publish(context.Background(), events.TopicNoticeDelivered, m); err != nil {
			t.Fatal(err)
		}
	}
	acknowledge(e.signer("alpha"))
	for end := time.Now().Add(10 * time.Second); counter(t, e.reg, "lethe_orchestrator_events_refused_total", nil) < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("an acknowledgement signed by a connector was not refused")
		}
	}
	acknowledge(e.signer(proof.Mailer))
	for end := time.Now().Add(10 * time.Second); counter(t, e.reg, "lethe_orchestrator_notice_deliveries_total", map[string]string{"channel": "bus", "result": "delivered"}) < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the mailer's acknowledgement was not recorded")
		}
	}
	if c := counter(t, e.reg, "lethe_orchestrator_notices_undelivered", map[string]string{"channel": "bus"}); c != 0 {
		t.Errorf("undelivered notices on the bus after the acknowledgement = %v", c)
	}
	e.logs.NoneOf(t, subjectEmail)
}

// retainer keeps its record by law until a date, and erases it once that
// date has passed on its clock.
type retainer struct {
	until time.Time
	now   func() time.Time
	toySystem
}

func (s *retainer) Erase(ctx context.Context, t connector.Task) (connector.Result, error) {
	if s.now().Before(s.until) {
		s.do(ctx, t, connector.Retained)
		return connector.Result{Outcome: connector.Retained, LegalBasis: "Accounting law", RetainUntil: s.until, Counts: map[string]int64{"invoices": 1}, Remaining: 1}, nil
	}
	return s.do(ctx, t, connector.Erased)
}

// A "retained until" answer defers the erasure to that date: the request is
// partially_retained until then, listed as such, and counted by the
// deferred-erasure metric; at the date (an injected clock) the follow-up
// erasure runs and completes the request.
func TestDeferredErasure(t *testing.T) {
	// An hour ahead: the connectors' keys, made now, are valid at every
	// time the clock shows.
	clock := &fakeClock{t: time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)}
	until := clock.Now().AddDate(1, 0, 0).Truncate(24 * time.Hour)
	e := newEnv(t, func(c *Config) { c.Now = clock.Now })
	e.shutdown() // the connectors take the clock too
	e.clock = clock
	e.start()
	keeper := &retainer{until: until, now: clock.Now}
	e.connect("alpha", &toySystem{})
	e.connect("beta", keeper)
	id := e.submit(erasure(true))
	view := e.waitState(id, "partially_retained")
	beta := tasksBySystem(view)["beta"]
	if beta["state"] != "deferred" || beta["next_attempt_at"] != until.Format(time.RFC3339) {
		t.Fatalf("beta's task %v, want deferred to %v", beta, until)
	}
	code, list := e.do("GET", "/v1/requests?state=partially_retained", "")
	if code != 200 || len(list["requests"].([]any)) != 1 {
		t.Fatalf("partially_retained list = %d %v", code, list)
	}
	c, err := e.certificate(id)
	if err != nil || c.State != "partially_retained" || !c.DeadlineMet {
		t.Fatalf("certificate %v, state %s, met %v", err, c.State, c.DeadlineMet)
	}
	answered := c.CompletedAt
	page := string(e.raw("GET", "/v1/requests/"+id+"/certificate.html"))
	for _, want := range []string{"Verified", "Answered, data kept by law", "Kept under: Accounting law, until " + until.Format("2 January 2006") + ", then erased"} {
		if !strings.Contains(page, want) {
			t.Errorf("the certificate page lacks %q", want)
		}
	}
	due := func(bucket string) float64 {
		return counter(t, e.reg, "lethe_orchestrator_deferred_erasures", map[string]string{"due": bucket})
	}
	if due("later") != 1 || due("lt_30d") != 0 || due("overdue") != 0 {
		t.Fatalf("deferred erasures later/lt_30d/overdue = %v/%v/%v, want 1/0/0", due("later"), due("lt_30d"), due("overdue"))
	}
	clock.Set(until.AddDate(0, 0, -10))
	if due("lt_30d") != 1 || due("later") != 0 {
		t.Fatalf("ten days before: lt_30d = %v, later = %v", due("lt_30d"), due("later"))
	}
	time.Sleep(5 * e.cfg.ScanInterval)
	if _, v := e.do("GET", "/v1/requests/"+id, ""); v["state"] != "partially_retained" || keeper.effectCount(id+".beta") != 1 {
		t.Fatalf("before its date the erasure ran: %v, %d effects", v["state"], keeper.effectCount(id+".beta"))
	}

	clock.Set(until.Add(time.Minute))
	view = e.waitState(id, "fulfilled")
	if beta := tasksBySystem(view)["beta"]; beta["outcome"] != "erased" || keeper.effectCount(id+".beta") != 2 {
		t.Fatalf("beta after the date: %v, %d effects", beta, keeper.effectCount(id+".beta"))
	}
	c, err = e.certificate(id)
	if err != nil {
		t.Fatalf("the final certificate does not verify: %v", err)
	}
	if c.State != "fulfilled" || c.AnsweredAt == nil || !c.AnsweredAt.Equal(answered) || !c.DeadlineMet {
		t.Fatalf("final certificate: state %s, answered %v (want %v), met %v", c.State, c.AnsweredAt, answered, c.DeadlineMet)
	}
	if due("later")+due("lt_30d")+due("overdue") != 0 {
		t.Error("deferred erasures still counted after the follow-up")
	}
	if ended := waitCounter(t, e.reg, "lethe_orchestrator_requests_ended_total", nil, 1); ended != 1 {
		t.Errorf("requests ended counted %v times, want once", ended)
	}
	e.logs.NoneOf(t, subjectEmail)
}

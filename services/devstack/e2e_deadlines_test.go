package devstack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/bus/natsauth"
	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/events"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// Billing keeps a person's invoices for ten years, by law. The erasure is
// answered at once (partially_retained, billing's part deferred to the end
// of the retention); ten years later, on the stack's clock, the deferred
// erasure runs by itself, the invoices go, and the request ends fulfilled
// with a re-issued certificate that still shows when the person was first
// answered.
func TestDeferredErasureEndToEnd(t *testing.T) { matrix(t, deferredErasureEndToEnd) }

func deferredErasureEndToEnd(t *testing.T, h *harness) {
	// person-0007 has two invoices (2024-01-22 and 2024-02-22), a card and
	// a billing profile.
	email, userID := "person-0007@example.com", "user-0007"
	issued := h.invoiceDates(email)
	if len(issued) < 2 {
		t.Fatalf("the seeded person has %d invoices: too few to prove anything", len(issued))
	}
	// Independent of the engine: ten years from the latest invoice's date.
	wantUntil := slices.MaxFunc(issued, time.Time.Compare).AddDate(10, 0, 0)

	_, out := h.call("POST", h.s.API+"/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"`+email+`"},"verified":true}`)
	id, _ := out["id"].(string)
	if id == "" {
		t.Fatalf("submit: %v", out)
	}
	view := h.waitState(id, "partially_retained")
	b := tasks(view)["billing"]
	if b["state"] != "deferred" || b["outcome"] != "retained" {
		t.Fatalf("billing's task is %v/%v, want deferred/retained: %v", b["state"], b["outcome"], b)
	}
	if until := parseTime(t, b["retain_until"]); !until.Equal(wantUntil) {
		t.Errorf("billing retains until %s, want %s (10 years from the latest invoice)", until, wantUntil)
	}
	if next := parseTime(t, b["next_attempt_at"]); !next.Equal(wantUntil) {
		t.Errorf("the deferred erasure is due %s, want %s", next, wantUntil)
	}
	if ahead := time.Until(wantUntil); ahead < 5*365*24*time.Hour {
		t.Errorf("retained for only %s more: the demo invoices are meant to be kept for years", ahead)
	}
	answeredAt := parseTime(t, view["answered_at"])

	// Listed among the partially retained requests.
	_, list := h.call("GET", h.s.API+"/v1/requests?state=partially_retained", "")
	if !slices.ContainsFunc(list["requests"].([]any), func(r any) bool { return r.(map[string]any)["id"] == id }) {
		t.Errorf("GET /v1/requests?state=partially_retained does not list %s: %v", id, list)
	}

	c, _, _ := h.verifyCertificate(id, email, userID)
	if c.State != "partially_retained" || !c.DeadlineMet || c.AnsweredAt != nil {
		t.Errorf("first certificate: state %s, deadline met %v, answered at %v", c.State, c.DeadlineMet, c.AnsweredAt)
	}
	if r := systemResult(t, c, "billing"); r.Outcome != "retained" || r.RetainUntil == nil || !r.RetainUntil.Equal(wantUntil) || r.LegalBasis == "" {
		t.Errorf("the certificate's billing row: %+v", r)
	}
	if n := len(h.invoiceDates(email)); n != len(issued) {
		t.Fatalf("%d of %d invoices left while their retention runs", n, len(issued))
	}
	h.onlyRetained(email, userID)
	if got := h.deferredGauge(); got["later"] != 1 || got["overdue"] != 0 || got["lt_30d"] != 0 {
		t.Errorf("lethe_orchestrator_deferred_erasures = %v, want one due later", got)
	}

	// Ten years on (and a day: retain_until is a date's midnight).
	h.clock.Jump(time.Until(wantUntil) + 24*time.Hour)
	view = h.waitState(id, "fulfilled")
	b = tasks(view)["billing"]
	if b["state"] != "answered" || b["outcome"] != "erased" || b["remaining"] != 0.0 {
		t.Errorf("after the retention billing's task is %v/%v, remaining %v: %v", b["state"], b["outcome"], b["remaining"], b)
	}
	if n := len(h.invoiceDates(email)); n != 0 {
		t.Errorf("%d invoices of the person are left after their retention ended", n)
	}
	// Nothing of the person is left anywhere now, not even in the
	// orchestrator's store.
	for _, place := range h.rowsMentioning(email, userID) {
		t.Errorf("the person is still in %s", place)
	}
	if got := parseTime(t, view["answered_at"]); !got.Equal(answeredAt) {
		t.Errorf("answered_at moved from %s to %s", answeredAt, got)
	}

	c, _, _ = h.verifyCertificate(id, email, userID)
	if c.State != "fulfilled" || !c.DeadlineMet {
		t.Errorf("re-issued certificate: state %s, deadline met %v", c.State, c.DeadlineMet)
	}
	if c.AnsweredAt == nil || !c.AnsweredAt.Equal(answeredAt) || !c.CompletedAt.After(wantUntil) {
		t.Errorf("re-issued certificate: answered at %v (want %s), completed at %s (want after %s)", c.AnsweredAt, answeredAt, c.CompletedAt, wantUntil)
	}
	if r := systemResult(t, c, "billing"); r.Outcome != "erased" || r.Remaining != 0 {
		t.Errorf("the re-issued certificate's billing row: %+v", r)
	}
	if got := h.deferredGauge(); got["later"] != 0 || got["overdue"] != 0 || got["lt_30d"] != 0 {
		t.Errorf("lethe_orchestrator_deferred_erasures = %v after the deferred erasure ran, want none", got)
	}
	h.logs.NoneOf(t, email, userID)
}

// The deadline is extended (Art. 12(3)) with a reason; the person is told
// on the bus and through a webhook, which fails once and is retried; the
// certificate shows the extension and where the notice went.
func TestExtensionEndToEnd(t *testing.T) { matrixStart(t, extensionEndToEnd) }

func extensionEndToEnd(t *testing.T, start func(...func(*Config)) *harness) {
	hook := newWebhook(t)
	// No mailer at first: a notice on the bus is not delivered until one
	// acknowledges it.
	h := start(func(c *Config) { c.Orchestrator.NoticeWebhook = hook.URL; c.Without = []string{natsauth.Mailer} })

	// person-0013 has only a card at billing: the erasure ends fulfilled.
	email, reason := "person-0013@example.com", "Your account spans several systems migrated this month; we need more time to find every copy."
	_, out := h.call("POST", h.s.API+"/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"`+email+`"}}`)
	id, _ := out["id"].(string)
	if id == "" || out["state"] != "pending_verification" {
		t.Fatalf("submit: %v", out)
	}
	extend := func(id, body string) (int, map[string]any) {
		return h.call("POST", h.s.API+"/v1/requests/"+id+"/extend", body)
	}
	if code, out := extend(id, `{"reason":"  "}`); code != http.StatusBadRequest {
		t.Errorf("extend without a reason = %d %v, want 400", code, out)
	}
	if code, out := extend("req_unknown", `{"reason":"x"}`); code != http.StatusNotFound {
		t.Errorf("extend an unknown request = %d %v, want 404", code, out)
	}
	reasonJSON, _ := json.Marshal(reason)
	code, view := extend(id, `{"reason":`+string(reasonJSON)+`}`)
	if code != http.StatusOK {
		t.Fatalf("extend = %d %v", code, view)
	}
	received := parseTime(t, view["received_at"])
	wantOriginal, wantDeadline := deadline.OneMonth(received), deadline.Policy{}.Extended(received)
	if got := parseTime(t, view["original_deadline"]); !got.Equal(wantOriginal) {
		t.Errorf("original_deadline = %s, want %s", got, wantOriginal)
	}
	if got := parseTime(t, view["deadline"]); !got.Equal(wantDeadline) || !got.After(wantOriginal.AddDate(0, 1, 25)) {
		t.Errorf("extended deadline = %s, want %s (two months after %s)", got, wantDeadline, wantOriginal)
	}
	if view["extension_reason"] != reason {
		t.Errorf("extension_reason = %v", view["extension_reason"])
	}
	if code, out := extend(id, `{"reason":"again"}`); code != http.StatusConflict || out["code"] != "already_extended" {
		t.Errorf("second extend = %d %v, want 409 already_extended", code, out)
	}

	// The webhook: refused once (503), delivered on the retry.
	calls := hook.waitDelivered(t)
	if len(calls) < 2 || calls[0].status != http.StatusServiceUnavailable {
		t.Fatalf("webhook calls: %+v; want a 503 then a retry", calls)
	}
	keys := h.keys()
	for _, c := range calls {
		if err := proof.VerifyNotice(keys, c.header.Get("Lethe-Signature"), c.body, time.Now()); err != nil {
			t.Errorf("webhook notice signature: %v", err)
		}
		bad := bytes.Replace(c.body, []byte(id), []byte("req_forged"), 1)
		if err := proof.VerifyNotice(keys, c.header.Get("Lethe-Signature"), bad, time.Now()); err == nil {
			t.Error("a changed notice body still verifies")
		}
		if c.header.Get("ce-id") != "notice:extension:"+id || c.header.Get("ce-type") != events.TypeNoticeExtension ||
			c.header.Get("ce-specversion") != "1.0" || c.header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook headers: %v", c.header)
		}
		var body struct {
			RequestID        string `json:"requestId"`
			Reason           string `json:"reason"`
			OriginalDeadline string `json:"originalDeadline"`
			Deadline         string `json:"deadline"`
			Subject          struct {
				Email string `json:"email"`
			} `json:"subject"`
		}
		if err := json.Unmarshal(c.body, &body); err != nil {
			t.Fatalf("webhook body is not JSON: %v", err)
		}
		if body.RequestID != id || body.Reason != reason || body.Subject.Email != email ||
			!parseTime(t, body.Deadline).Equal(wantDeadline) || !parseTime(t, body.OriginalDeadline).Equal(wantOriginal) {
			t.Errorf("webhook body: %s", c.body)
		}
	}

	// The request goes on and ends; its certificate shows the extension
	// and the channels the notice reached: the webhook, not the bus, where
	// the notice was published but no mailer acknowledged it.
	if code, out := h.call("POST", h.s.API+"/v1/requests/"+id+"/verify", `{"method":"document"}`); code != http.StatusOK {
		t.Fatalf("verify = %d %v", code, out)
	}
	h.waitState(id, "fulfilled")
	certificate := func(channels int) *proof.Certificate {
		for end := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			c, _, _ := h.verifyCertificate(id, email)
			if c.Extension != nil && len(c.Extension.NoticeChannels) == channels || time.Now().After(end) {
				return c
			}
		}
	}
	if x := certificate(1).Extension; x == nil || !slices.Equal(x.NoticeChannels, []string{"webhook"}) {
		t.Fatalf("certificate extension before a mailer: %+v, want notice channels [webhook]", x)
	}
	for end := time.Now().Add(30 * time.Second); h.metric("lethe_orchestrator_notice_deliveries_total", map[string]string{"channel": "bus", "result": "published"}) != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the notice was not published on the bus")
		}
	}
	if got := h.metric("lethe_orchestrator_notice_deliveries_total", map[string]string{"channel": "bus", "result": "delivered"}); got != 0 {
		t.Errorf("bus deliveries before any mailer: %v", got)
	}

	// The mailer comes: it mails the person and acknowledges; the
	// certificate is re-issued with the bus.
	h.s.StartMailer()
	c := certificate(2)
	mails := h.s.Mailbox.Mails()
	if len(mails) != 1 || mails[0].To != email || mails[0].NoticeID != "extension:"+id || !strings.Contains(mails[0].Body, reason) {
		t.Errorf("mails: %+v", mails)
	}
	x := c.Extension
	if x == nil || !slices.Equal(x.NoticeChannels, []string{"bus", "webhook"}) {
		t.Fatalf("certificate extension: %+v, want notice channels [bus webhook]", x)
	}
	if x.Reason != reason || !x.OriginalDeadline.Equal(wantOriginal) || !c.Deadline.Equal(wantDeadline) ||
		x.NoticeDeliveredAt == nil || x.NoticeDeliveredAt.After(wantOriginal) || !c.DeadlineMet || c.State != "fulfilled" {
		t.Errorf("certificate: state %s, deadline %s, met %v, extension %+v", c.State, c.Deadline, c.DeadlineMet, x)
	}

	// Exactly once on each channel: the retry re-sent only to the webhook.
	if got := hook.delivered(); got != 1 {
		t.Errorf("%d 2xx webhook deliveries, want 1", got)
	}
	// Counters move just after the commit of what they count: looked at
	// until they settle.
	wants := []struct {
		channel, result string
		want            float64
	}{{"bus", "published", 1}, {"bus", "delivered", 1}, {"bus", "failed", 0}, {"webhook", "delivered", 1}, {"webhook", "failed", 1}}
	var wrong []string
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		wrong = nil
		for _, lv := range wants {
			if got := h.metric("lethe_orchestrator_notice_deliveries_total", map[string]string{"channel": lv.channel, "result": lv.result}); got != lv.want {
				wrong = append(wrong, fmt.Sprintf("lethe_orchestrator_notice_deliveries_total{channel=%q,result=%q} = %v, want %v", lv.channel, lv.result, got, lv.want))
			}
		}
		if len(wrong) == 0 || time.Now().After(end) {
			break
		}
	}
	for _, w := range wrong {
		t.Error(w)
	}
	h.logs.NoneOf(t, email)
}

// Deadlines follow the tenant's time zone: a request received at 23:30 UTC
// on 31 January is received on 1 February in Paris, so its deadline is the
// end of 1 March there, or of Monday 2 March for a tenant whose deadlines
// roll off weekends. The policy goes with the request into its
// certificate, whose deadline a verifier recomputes from it.
func TestTenantDeadlinesEndToEnd(t *testing.T) { matrixStart(t, tenantDeadlinesEndToEnd) }

func tenantDeadlinesEndToEnd(t *testing.T, start func(...func(*Config)) *harness) {
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	// The requests are received months ago and verified late on purpose:
	// their identity checks may wait a year here rather than expire.
	if err := os.WriteFile(file, []byte(`
default:
  verification_expiry: 8760h
tenants:
  acme-fr:
    time_zone: Europe/Paris
    verification_expiry: 8760h
  acme-fr-roll:
    time_zone: Europe/Paris
    verification_expiry: 8760h
    roll_to_working_day: true
    # French public holidays; a request keeps those that can move its
    # deadlines (receipt to three months and two weeks after).
    holidays: [2025-12-25, 2026-04-06, 2026-05-01, 2026-12-25]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tenants, err := deadline.LoadTenants(file)
	if err != nil {
		t.Fatal(err)
	}
	h := start(func(c *Config) { c.Orchestrator.Deadlines = tenants })

	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	received := time.Date(2026, 1, 31, 23, 30, 0, 0, time.UTC) // 00:30 on 1 February in Paris (UTC+1 in winter)
	for _, tc := range []struct {
		tenant, email string
		// Written by hand, checked on a calendar: 1 March 2026 is a
		// Sunday; Paris is on UTC+1 until 29 March.
		want   time.Time
		policy *deadline.Spec
	}{
		{"demo", "person-0021@example.com", time.Date(2026, 2, 28, 23, 59, 59, 0, time.UTC), nil},
		{"acme-fr", "person-0022@example.com", time.Date(2026, 3, 1, 23, 59, 59, 0, paris), &deadline.Spec{TimeZone: "Europe/Paris"}},
		{"acme-fr-roll", "person-0023@example.com", time.Date(2026, 3, 2, 23, 59, 59, 0, paris),
			&deadline.Spec{TimeZone: "Europe/Paris", RollToWorkingDay: true, Holidays: []string{"2026-04-06", "2026-05-01"}}},
	} {
		t.Run(tc.tenant, func(t *testing.T) {
			h := *h
			h.t = t
			// The hand-written value and the library agree.
			pol := deadline.Policy{}
			if tc.policy != nil {
				if pol, err = tc.policy.Policy(); err != nil {
					t.Fatal(err)
				}
			}
			if got := pol.Deadline(received); !got.Equal(tc.want) {
				t.Fatalf("deadline.Policy says %s, the calendar %s", got, tc.want)
			}

			_, out := h.call("POST", h.s.API+"/v1/requests", fmt.Sprintf(`{"type":"erasure","tenant":%q,"subject":{"email":%q},"received_at":%q}`,
				tc.tenant, tc.email, received.Format(time.RFC3339)))
			id, _ := out["id"].(string)
			if id == "" {
				t.Fatalf("submit: %v", out)
			}
			if got := parseTime(t, out["deadline"]); !got.Equal(tc.want) {
				t.Errorf("deadline = %s (%s in Paris), want %s", got, got.In(paris), tc.want)
			}
			_, view := h.call("GET", h.s.API+"/v1/requests/"+id, "")
			var want deadline.Spec
			if tc.policy != nil {
				want = *tc.policy
			}
			zone, _ := view["time_zone"].(string)
			roll, _ := view["roll_to_working_day"].(bool)
			if got := parseTime(t, view["deadline"]); !got.Equal(tc.want) || zone != want.TimeZone || roll != want.RollToWorkingDay {
				t.Errorf("view: deadline %s, time_zone %q, roll %v; want %s, %+v", got, zone, roll, tc.want, want)
			}
			// Long past its original deadline: too late to extend.
			if code, out := h.call("POST", h.s.API+"/v1/requests/"+id+"/extend", `{"reason":"late"}`); code != http.StatusConflict || out["code"] != "too_late" {
				t.Errorf("extend = %d %v, want 409 too_late", code, out)
			}
			if code, out := h.call("POST", h.s.API+"/v1/requests/"+id+"/verify", `{"method":"document"}`); code != http.StatusOK {
				t.Fatalf("verify = %d %v", code, out)
			}
			h.waitState(id, "fulfilled", "partially_retained")
			c, _, _ := h.verifyCertificate(id, tc.email)
			if !c.Deadline.Equal(tc.want) || !c.ReceivedAt.Equal(received) {
				t.Errorf("certificate: received %s, deadline %s; want %s, %s", c.ReceivedAt, c.Deadline, received, tc.want)
			}
			if !specEqual(c.DeadlinePolicy, tc.policy) {
				t.Errorf("certificate's deadline policy = %+v, want %+v", c.DeadlinePolicy, tc.policy)
			}
			// Answered in November for a request received in January: the
			// certificate says so.
			if c.DeadlineMet {
				t.Error("the certificate says a deadline months past was met")
			}
			h.logs.NoneOf(t, tc.email)
		})
	}
}

func specEqual(a, b *deadline.Spec) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.TimeZone == b.TimeZone && a.RollToWorkingDay == b.RollToWorkingDay && slices.Equal(a.Holidays, b.Holidays)
}

func parseTime(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("not a time: %v", v)
	}
	return at
}

func systemResult(t *testing.T, c *proof.Certificate, system string) proof.SystemResult {
	t.Helper()
	for _, s := range c.Systems {
		if s.System == system {
			return s
		}
	}
	t.Fatalf("the certificate has no row for %s", system)
	return proof.SystemResult{}
}

// invoiceDates reads billing's database directly: the dates of the
// person's invoices.
func (h *harness) invoiceDates(email string) []time.Time {
	h.t.Helper()
	db, err := sqlitedb.Open(filepath.Join(h.dir, "billing", "billing.db"))
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT issued_at FROM invoices WHERE email = ?`, email)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			h.t.Fatal(err)
		}
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			h.t.Fatalf("invoice date %q: %v", s, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// metric reads one sample from the stack's registry (0 when absent).
func (h *harness) metric(name string, labels map[string]string) float64 {
	h.t.Helper()
	families, err := h.s.cfg.Registry.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// deferredGauge is lethe_orchestrator_deferred_erasures by due bucket.
func (h *harness) deferredGauge() map[string]float64 {
	out := map[string]float64{}
	for _, due := range []string{"overdue", "lt_30d", "later"} {
		out[due] = h.metric("lethe_orchestrator_deferred_erasures", map[string]string{"due": due})
	}
	return out
}

// webhook stands for the service that tells data subjects: it records
// every POST, refuses the first (503) and takes the rest (204).
type webhook struct {
	*httptest.Server
	mu    sync.Mutex
	calls []webhookCall
}

type webhookCall struct {
	header http.Header
	body   []byte
	status int
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		status := http.StatusNoContent
		if len(w.calls) == 0 {
			status = http.StatusServiceUnavailable
		}
		w.calls = append(w.calls, webhookCall{header: r.Header.Clone(), body: body, status: status})
		w.mu.Unlock()
		rw.WriteHeader(status)
	}))
	t.Cleanup(w.Close)
	return w
}

// delivered counts the POSTs answered 2xx.
func (w *webhook) delivered() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, c := range w.calls {
		if c.status/100 == 2 {
			n++
		}
	}
	return n
}

// waitDelivered waits for a 2xx delivery and returns the calls so far.
func (w *webhook) waitDelivered(t *testing.T) []webhookCall {
	t.Helper()
	for end := time.Now().Add(60 * time.Second); w.delivered() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no webhook delivery within 60s: %d calls", len(w.snapshot()))
		}
	}
	return w.snapshot()
}

func (w *webhook) snapshot() []webhookCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

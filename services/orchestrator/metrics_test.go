package orchestrator

import (
	"bytes"
	"fmt"
	"math"
	"os/exec"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/deadline"
)

// The deadline gauges count the requests not yet ended by time left, and
// the tasks each system has not answered.
func TestDeadlineMetrics(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().UTC()
	want := map[string]float64{"overdue": 0, "lt_3d": 0, "lt_7d": 0, "lt_14d": 0, "later": 0}
	for _, daysAgo := range []int{40, 29, 25, 20, 5, 5} {
		received := now.AddDate(0, 0, -daysAgo).Truncate(time.Second)
		e.submit(fmt.Sprintf(`{"type":"erasure","tenant":"demo","subject":{"email":"a@example.com"},"received_at":%q,"verified":%v}`,
			received.Format(time.RFC3339), daysAgo == 40))
		switch left := deadline.OneMonth(received).Sub(now); {
		case left < 0:
			want["overdue"]++
		case left < 3*24*time.Hour:
			want["lt_3d"]++
		case left < 7*24*time.Hour:
			want["lt_7d"]++
		case left < 14*24*time.Hour:
			want["lt_14d"]++
		default:
			want["later"]++
		}
	}
	if want["overdue"] != 1 || want["later"] != 2 {
		t.Fatalf("the fixture's buckets are off: %v", want)
	}
	for bucket, n := range want {
		if got := counter(t, e.reg, "lethe_orchestrator_open_requests", map[string]string{"bucket": bucket}); got != n {
			t.Errorf("open requests %s = %v, want %v", bucket, got, n)
		}
	}
	earliest := counter(t, e.reg, "lethe_orchestrator_earliest_open_deadline_timestamp_seconds", nil)
	if math.Abs(earliest-float64(now.AddDate(0, 0, -9).Unix())) > 3*86400 {
		t.Errorf("earliest open deadline %v is not about 9 days ago", time.Unix(int64(earliest), 0))
	}
	// Only the verified request has sent its tasks; no connector answers them.
	for _, sys := range testSystems {
		if got := counter(t, e.reg, "lethe_orchestrator_pending_tasks", map[string]string{"system": sys}); got != 1 {
			t.Errorf("pending tasks of %s = %v, want 1", sys, got)
		}
		if got := counter(t, e.reg, "lethe_orchestrator_earliest_pending_deadline_timestamp_seconds", map[string]string{"system": sys}); got == 0 || got > float64(now.Unix()) {
			t.Errorf("earliest pending deadline of %s = %v, want an overdue one", sys, got)
		}
	}
}

// An ended request counts toward the objective, and its answers toward
// the systems' completion times.
func TestObjectiveMetrics(t *testing.T) {
	e := newEnv(t, nil)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	e.waitState(e.submit(erasure(true)), "fulfilled")
	late := time.Now().UTC().AddDate(0, 0, -10).Format(time.RFC3339)
	e.waitState(e.submit(fmt.Sprintf(`{"type":"erasure","tenant":"demo","subject":{"email":"b@example.com"},"received_at":%q,"verified":true}`, late)), "fulfilled")
	for result, n := range map[string]float64{"within_objective": 1, "late": 1, "failed": 0} {
		if got := waitCounter(t, e.reg, "lethe_orchestrator_requests_ended_total", map[string]string{"type": "erasure", "result": result}, n); got != n {
			t.Errorf("ended %s = %v, want %v", result, got, n)
		}
	}
	// The certifier issued both certificates, which nobody read: none waits.
	if got := waitCounter(t, e.reg, "lethe_orchestrator_certificates_issued_total", nil, 2); got != 2 {
		t.Errorf("certificates issued = %v, want 2", got)
	}
	if n := counter(t, e.reg, "lethe_orchestrator_certificates_waiting", nil); n != 0 {
		t.Errorf("%v certificates wait once issued", n)
	}
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "lethe_orchestrator_task_completion_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetHistogram().GetSampleCount(); c != 2 {
				t.Errorf("%v: %d completions observed, want 2", m.GetLabel(), c)
			}
		}
	}
	if last := counter(t, e.reg, "lethe_orchestrator_last_receipt_timestamp_seconds", map[string]string{"system": "alpha"}); time.Since(time.Unix(int64(last), 0)) > time.Minute {
		t.Errorf("last receipt of alpha at %v", time.Unix(int64(last), 0))
	}
	// The SQLite store's writer ran every write: two submissions and four
	// receipts at least, in as many transactions or fewer.
	busy := counter(t, e.reg, "lethe_orchestrator_store_writer_busy_seconds_total", nil)
	groups := counter(t, e.reg, "lethe_orchestrator_store_writer_transactions_total", nil)
	writes := counter(t, e.reg, "lethe_orchestrator_store_writer_writes_total", nil)
	if busy <= 0 || groups < 1 || writes < 6 || writes < groups {
		t.Errorf("store writer: busy %vs, %v transactions, %v writes", busy, groups, writes)
	}
}

// `promtool check metrics` on a live /metrics reports nothing.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): metrics lint not run")
	}
	e := newEnv(t, nil)
	e.connect("alpha", &toySystem{})
	e.connect("beta", &toySystem{})
	e.waitState(e.submit(erasure(true)), "fulfilled")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(e.raw("GET", "/metrics"))
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// The nearest open deadline is shown per tenant class of the tenants file;
// an extension whose notice has reached no channel leaves its original
// deadline standing, and a gauge shows it until the notice goes out.
func TestTenantClassAndUntoldDeadlineMetrics(t *testing.T) {
	tenants, err := deadline.ParseTenants([]byte("tenants:\n  acme: {class: enterprise}\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Deadlines = tenants })
	now := time.Now().UTC().Truncate(time.Second)
	submit := func(tenant string, daysAgo int) string {
		return e.submit(fmt.Sprintf(`{"type":"erasure","tenant":%q,"subject":{"email":"a@example.com"},"received_at":%q}`,
			tenant, now.AddDate(0, 0, -daysAgo).Format(time.RFC3339)))
	}
	submit("demo", 10)
	id := submit("acme", 20)
	submit("acme", 2)
	gauge := func(name string, labels map[string]string) time.Time {
		return time.Unix(int64(counter(t, e.reg, name, labels)), 0).UTC()
	}
	for _, tt := range []struct {
		class   string
		daysAgo int
	}{{"default", 10}, {"enterprise", 20}} {
		want := deadline.OneMonth(now.AddDate(0, 0, -tt.daysAgo)).Truncate(time.Second)
		if got := gauge("lethe_orchestrator_earliest_open_deadline_timestamp_seconds", map[string]string{"tenant_class": tt.class}); !got.Equal(want) {
			t.Errorf("earliest open deadline of class %s = %v, want %v", tt.class, got, want)
		}
	}
	if got := counter(t, e.reg, "lethe_orchestrator_earliest_untold_deadline_timestamp_seconds", nil); got != 0 {
		t.Fatalf("untold deadline before any extension = %v", got)
	}

	// The broker is down: the notice cannot go out, the original deadline
	// stands and the gauge says so.
	port := e.natsDown()
	if code, out := e.do("POST", "/v1/requests/"+id+"/extend", `{"reason":"Archives must be restored."}`); code != 200 {
		t.Fatalf("extend = %d %v", code, out)
	}
	original := deadline.OneMonth(now.AddDate(0, 0, -20)).Truncate(time.Second)
	time.Sleep(5 * e.cfg.ScanInterval)
	if got := gauge("lethe_orchestrator_earliest_untold_deadline_timestamp_seconds", nil); !got.Equal(original) {
		t.Errorf("untold deadline = %v, want the original deadline %v", got, original)
	}
	if got := counter(t, e.reg, "lethe_orchestrator_notices_undelivered", map[string]string{"channel": "bus"}); got != 1 {
		t.Errorf("undelivered on the bus = %v, want 1", got)
	}
	e.natsUp(port)
	e.noticeSink() // a mailer, whose acknowledgement makes the notice told
	for end := time.Now().Add(30 * time.Second); counter(t, e.reg, "lethe_orchestrator_earliest_untold_deadline_timestamp_seconds", nil) != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the notice never went out after the broker came back")
		}
	}
}

// Package metrics holds the orchestrator's Prometheus series: counters the
// lifecycle, the relay, the notifier and the API add to, and gauges read
// from the store at scrape time. Labels name systems, states, outcomes,
// reasons and tenant classes, never a request id or anything of a person.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	dto "github.com/prometheus/client_model/go"

	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// Results of lethe_orchestrator_requests_ended_total: the SLO's view of
// how a request ended.
const (
	WithinObjective = "within_objective" // answered within the objective
	Late            = "late"             // answered, after the objective
	EndedFailed     = string(lifecycle.Failed)
)

// Metrics are the orchestrator's series.
type Metrics struct {
	Gatherer      prometheus.Gatherer
	Created       *prometheus.CounterVec
	Receipts      *prometheus.CounterVec
	Rejected      *prometheus.CounterVec
	Ignored       *prometheus.CounterVec
	EventsRefused prometheus.Counter
	Failed        *prometheus.CounterVec
	Retries       *prometheus.CounterVec
	// RetriesPostponed counts waits extended for tasks queued behind
	// their system's backlog.
	RetriesPostponed *prometheus.CounterVec
	DeadLetters      *prometheus.CounterVec
	Published        *prometheus.CounterVec
	PublishErrors    prometheus.Counter
	Http             *prometheus.CounterVec
	LastReceipt      *prometheus.GaugeVec
	Completion       *prometheus.HistogramVec
	Ended            *prometheus.CounterVec
	// CertificatesIssued counts certificates issued (again, too, after a
	// request changed).
	CertificatesIssued prometheus.Counter
	Extensions         *prometheus.CounterVec
	Notices            *prometheus.CounterVec
	// Retention sweeps, by tenant and policy (names, never personal data).
	SweepLast       *prometheus.GaugeVec
	SweepPastPeriod *prometheus.GaugeVec
	SweepFailures   *prometheus.CounterVec
	// Witnesses, by the name each is configured under.
	WitnessCosignatures *prometheus.CounterVec
	WitnessRefusals     *prometheus.CounterVec
	CheckpointWitnessed prometheus.Gauge
}

// New registers the series on reg. The store's gauges are read from st
// at scrape time; systems, the tenants' classes and the notice channels
// are the label values that exist from the start.
//
// A scrape reads the store once per cache (at most): a scrape storm, or
// several Prometheus servers, cannot load the store.
func New(reg prometheus.Registerer, st store.Store, systems []string, tenants *deadline.Tenants, channels []string, now func() time.Time, cache time.Duration) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		Created: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_requests_created_total",
			Help: "Requests created, by type and source (api, account_deleted)."}, []string{"type", "source"}),
		Receipts: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_receipts_accepted_total",
			Help: "Receipts recorded, by system and outcome."}, []string{"system", "outcome"}),
		Rejected: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_receipts_rejected_total",
			Help: "Receipts rejected without changing any state, by reason."}, []string{"reason"}),
		EventsRefused: f.NewCounter(prometheus.CounterOpts{Name: "lethe_orchestrator_events_refused_total",
			Help: "account.deleted events refused because they are not signed by a key registered for their source, or their subject is not sealed to the orchestrator."}),
		Ignored: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_receipts_ignored_total",
			Help: "Receipts for tasks already finished (duplicate) or for an older attempt (stale)."}, []string{"reason"}),
		Failed: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_task_failures_total",
			Help: "Failed answers from systems."}, []string{"system"}),
		Retries: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_task_retries_total",
			Help: "Tasks attempted again after a failure or no answer."}, []string{"system"}),
		RetriesPostponed: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_task_retries_postponed_total",
			Help: "Waits for an answer extended, using no attempt, because the system was still working through tasks queued before the task."}, []string{"system"}),
		DeadLetters: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_dead_letters_total",
			Help: "Tasks given up after the last attempt."}, []string{"system"}),
		Published: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_outbox_published_total",
			Help: "Outbox messages published to the bus, by CloudEvents type."}, []string{"type"}),
		PublishErrors: f.NewCounter(prometheus.CounterOpts{Name: "lethe_outbox_publish_errors_total",
			Help: "Failed attempts to publish an outbox message (retried)."}),
		Http: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_api_http_requests_total",
			Help: "HTTP API requests, by route and status code."}, []string{"route", "code"}),
		LastReceipt: f.NewGaugeVec(prometheus.GaugeOpts{Name: "lethe_orchestrator_last_receipt_timestamp_seconds",
			Help: "When the last receipt of each system was accepted (the orchestrator's start until the first)."}, []string{"system"}),
		Completion: f.NewHistogramVec(prometheus.HistogramOpts{Name: "lethe_orchestrator_task_completion_seconds",
			Help:    "Time from a request's receipt to a system's answer.",
			Buckets: []float64{60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 31 * 86400, 92 * 86400}}, []string{"system"}),
		Ended: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_requests_ended_total",
			Help: "Requests ended, by type and result: within_objective (fulfilled within the objective duration), late, failed, denied (refused), expired (never verified)."}, []string{"type", "result"}),
		CertificatesIssued: f.NewCounter(prometheus.CounterOpts{Name: "lethe_orchestrator_certificates_issued_total",
			Help: "Certificates of fulfilment issued: one when a request ends, another each time it changes after."}),
		Extensions: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_extensions_total",
			Help: "Deadlines extended by two further months (GDPR Art. 12(3)), by request type."}, []string{"type"}),
		Notices: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_notice_deliveries_total",
			Help: "Deliveries of notices to data subjects, by channel (bus, webhook) and result (delivered; failed; published: handed to the bus, delivered once a mailer acknowledges it)."}, []string{"channel", "result"}),
		SweepLast: f.NewGaugeVec(prometheus.GaugeOpts{Name: "lethe_orchestrator_sweep_last_success_timestamp_seconds",
			Help: "When the last retention run of a policy that was not a dry run ended with every system's answer."}, []string{"tenant", "policy"}),
		SweepPastPeriod: f.NewGaugeVec(prometheus.GaugeOpts{Name: "lethe_orchestrator_sweep_records_past_period",
			Help: "Records past their policy's period, as the last run counted them: what a dry run would delete; 0 after a run that deleted them all."}, []string{"tenant", "policy"}),
		SweepFailures: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_sweep_failures_total",
			Help: "Retention runs that ended failed (a system failed or never answered)."}, []string{"tenant", "policy"}),
		WitnessCosignatures: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_witness_cosignatures_total",
			Help: "Checkpoints of the log a witness cosigned."}, []string{"witness"}),
		WitnessRefusals: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_witness_refusals_total",
			Help: "Checkpoints a witness did not cosign, by reason: inconsistent (it holds a checkpoint this log contradicts: a rewritten history), unknown_log, log_signature, refused, unreachable."}, []string{"witness", "reason"}),
		CheckpointWitnessed: f.NewGauge(prometheus.GaugeOpts{Name: "lethe_orchestrator_checkpoint_witnessed_timestamp_seconds",
			Help: "When a checkpoint of the log last gathered the witnesses' quorum of cosignatures (only with witnesses configured); certificates wait for one."}),
	}
	start := float64(now().Unix())
	for _, s := range systems {
		m.LastReceipt.WithLabelValues(s).Set(start)
		m.Completion.WithLabelValues(s)
	}
	for _, t := range lifecycle.Types() {
		for _, r := range []string{WithinObjective, Late, EndedFailed, string(lifecycle.Denied), string(lifecycle.Expired)} {
			m.Ended.WithLabelValues(string(t), r)
		}
		m.Extensions.WithLabelValues(string(t))
	}
	for _, ch := range channels {
		m.Notices.WithLabelValues(ch, "delivered")
		m.Notices.WithLabelValues(ch, "failed")
		if ch == proof.ChannelBus {
			m.Notices.WithLabelValues(ch, "published") // delivered once a mailer acknowledges it
		}
	}
	for _, s := range systems {
		m.Retries.WithLabelValues(s)
		m.RetriesPostponed.WithLabelValues(s)
		m.DeadLetters.WithLabelValues(s)
		m.Failed.WithLabelValues(s)
	}
	for _, r := range []string{"malformed", "unknown_task", "mismatch", "not_published", "bad_signature", "unknown_key", "wrong_system", "key_not_valid", "clock_skew", "bad_export"} {
		m.Rejected.WithLabelValues(r)
	}
	for _, r := range []string{"duplicate", "stale"} {
		m.Ignored.WithLabelValues(r)
	}
	reg.MustRegister(&cached{ttl: cache, c: &storeCollector{store: st, systems: systems, tenants: tenants, channels: channels, now: now}})
	if w, ok := st.(interface{ WriterStats() sqlitedb.GroupStats }); ok {
		registerWriter(f, w.WriterStats)
	}
	m.Gatherer = prometheus.DefaultGatherer
	if g, ok := reg.(prometheus.Gatherer); ok {
		m.Gatherer = g
	}
	return m
}

// registerWriter exports the counters of a store whose writes one writer
// runs (SQLite): the rate of its busy seconds near 1 is a saturated store,
// the bound of the whole pipeline however idle the rest is.
func registerWriter(f promauto.Factory, stats func() sqlitedb.GroupStats) {
	f.NewCounterFunc(prometheus.CounterOpts{Name: "lethe_orchestrator_store_writer_busy_seconds_total",
		Help: "Time the SQLite store's one writer spent running transactions (waits for the CPU and the disk included); a rate near 1 is a saturated store."},
		func() float64 { return stats().Busy.Seconds() })
	f.NewCounterFunc(prometheus.CounterOpts{Name: "lethe_orchestrator_store_writer_transactions_total",
		Help: "Transactions the SQLite store's writer committed; each carries the writes of the callers that queued meanwhile (group commit)."},
		func() float64 { return float64(stats().Groups) })
	f.NewCounterFunc(prometheus.CounterOpts{Name: "lethe_orchestrator_store_writer_writes_total",
		Help: "Writes (one caller's function each) the SQLite store's writer ran; divided by the transactions, the mean group size."},
		func() float64 { return float64(stats().Members) })
}

// Instrument counts h's answers by route and status code.
func (m *Metrics) Instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		m.Http.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// cached serves a collector's last reading for ttl.
type cached struct {
	ttl time.Duration
	c   prometheus.Collector

	mu   sync.Mutex
	at   time.Time
	last []prometheus.Metric
}

func (c *cached) Describe(ch chan<- *prometheus.Desc) { c.c.Describe(ch) }

func (c *cached) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ttl <= 0 || time.Since(c.at) >= c.ttl {
		read := make(chan prometheus.Metric, 64)
		go func() { c.c.Collect(read); close(read) }()
		c.last = c.last[:0]
		for m := range read {
			c.last = append(c.last, m)
		}
		c.at = time.Now()
	}
	for _, m := range c.last {
		ch <- m
	}
}

// storeCollector reads gauges from the store at scrape time, so they are
// right after a restart and agree between replicas (aggregate them with
// max, not sum).
type storeCollector struct {
	store    store.Store
	systems  []string
	tenants  *deadline.Tenants // their classes
	channels []string
	now      func() time.Time
}

var (
	requestsDesc = prometheus.NewDesc("lethe_orchestrator_requests", "Requests by state and type.", []string{"state", "type"}, nil)
	unresolved   = prometheus.NewDesc("lethe_orchestrator_failed_requests_unresolved",
		"Requests that ended failed and wait for an operator: a retry of their failed task (once the system is fixed) or a resolution by hand. They keep their subject's identifiers, sealed, until then.", nil, nil)
	outboxDesc          = prometheus.NewDesc("lethe_outbox_depth_messages", "Outbox messages not yet published.", nil, nil)
	outboxAge           = prometheus.NewDesc("lethe_outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished outbox message (0 when empty).", nil, nil)
	waitingCertificates = prometheus.NewDesc("lethe_orchestrator_certificates_waiting",
		"Certificates that wait to be issued: for the certifier's next batch (a moment), or, with witnesses, for a checkpoint they cosigned.", nil, nil)
	storeUp  = prometheus.NewDesc("lethe_orchestrator_store_up", "1 if the store answered the last scrape.", nil, nil)
	openDesc = prometheus.NewDesc("lethe_orchestrator_open_requests",
		"Requests not yet ended, by time left to their deadline: overdue, lt_3d, lt_7d, lt_14d, later.", []string{"bucket"}, nil)
	earliestOpen = prometheus.NewDesc("lethe_orchestrator_earliest_open_deadline_timestamp_seconds",
		"The nearest deadline of a request not yet ended, per tenant class of the tenants file (0 when none is open).", []string{"tenant_class"}, nil)
	untoldDeadline = prometheus.NewDesc("lethe_orchestrator_earliest_untold_deadline_timestamp_seconds",
		"The nearest original deadline of an extended request whose notice has reached the person on no channel: until it does, that deadline stands (0 when none).", nil, nil)
	pendingDesc = prometheus.NewDesc("lethe_orchestrator_pending_tasks",
		"Tasks sent to a system and not yet answered.", []string{"system"}, nil)
	earliestPending = prometheus.NewDesc("lethe_orchestrator_earliest_pending_deadline_timestamp_seconds",
		"The nearest deadline among a system's unanswered tasks of requests not yet ended (0 when none).", []string{"system"}, nil)
	deferredDesc = prometheus.NewDesc("lethe_orchestrator_deferred_erasures",
		"Erasures deferred by a lawful retention and not yet carried out, by when due: overdue (retain-until passed), lt_30d, later.", []string{"due"}, nil)
	undeliveredDesc = prometheus.NewDesc("lethe_orchestrator_notices_undelivered",
		"Notices to data subjects not yet delivered, by channel.", []string{"channel"}, nil)
)

// deferredBuckets are the due buckets of lethe_orchestrator_deferred_erasures.
var deferredBuckets = []struct {
	name string
	in   time.Duration
}{{"overdue", 0}, {"lt_30d", 30 * 24 * time.Hour}}

// deadlineBuckets are the time-left buckets of lethe_orchestrator_open_requests.
var deadlineBuckets = []struct {
	name string
	left time.Duration
}{{"overdue", 0}, {"lt_3d", 3 * 24 * time.Hour}, {"lt_7d", 7 * 24 * time.Hour}, {"lt_14d", 14 * 24 * time.Hour}}

// Bounds are the deadline bounds and the due bounds at now that the
// pressure gauges count against (store.Pressure).
func Bounds(now time.Time) (deadlines, due []time.Time) {
	deadlines = make([]time.Time, len(deadlineBuckets))
	for i, b := range deadlineBuckets {
		deadlines[i] = now.Add(b.left)
	}
	due = make([]time.Time, len(deferredBuckets))
	for i, b := range deferredBuckets {
		due[i] = now.Add(b.in)
	}
	return deadlines, due
}

// ReadPressure reads the store's pressure at now against [Bounds]: what
// the gauges show, and the console too.
func ReadPressure(ctx context.Context, st interface {
	Pressure(ctx context.Context, bounds, dueBounds []time.Time) (store.Pressure, error)
}, now time.Time) (store.Pressure, error) {
	deadlines, due := Bounds(now)
	return st.Pressure(ctx, deadlines, due)
}

// Bucket is a count under a gauge's label value.
type Bucket struct {
	Name  string
	Count int
}

// OpenByTimeLeft splits the requests not yet ended of a pressure read
// against [Bounds] by time left: overdue, lt_3d, lt_7d, lt_14d, later
// (lethe_orchestrator_open_requests).
func OpenByTimeLeft(p store.Pressure) []Bucket {
	out, prev := make([]Bucket, 0, len(deadlineBuckets)+1), 0
	for i, b := range deadlineBuckets {
		out = append(out, Bucket{b.name, p.OpenBefore[i] - prev})
		prev = p.OpenBefore[i]
	}
	return append(out, Bucket{"later", p.Open - prev})
}

// DeferredByDue splits the deferred erasures of a pressure read against
// [Bounds] by when due: overdue, lt_30d, later
// (lethe_orchestrator_deferred_erasures).
func DeferredByDue(p store.Pressure) []Bucket {
	out, prev := make([]Bucket, 0, len(deferredBuckets)+1), 0
	for i, b := range deferredBuckets {
		out = append(out, Bucket{b.name, p.DeferredBefore[i] - prev})
		prev = p.DeferredBefore[i]
	}
	return append(out, Bucket{"later", p.Deferred - prev})
}

// LastAnswer is when system's last receipt was accepted (the
// orchestrator's start until the first), as the gauge shows it.
func (m *Metrics) LastAnswer(system string) time.Time {
	var d dto.Metric
	if err := m.LastReceipt.WithLabelValues(system).Write(&d); err != nil || d.GetGauge() == nil {
		return time.Time{}
	}
	return time.Unix(int64(d.GetGauge().GetValue()), 0)
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- unresolved
	ch <- outboxDesc
	ch <- outboxAge
	ch <- waitingCertificates
	ch <- storeUp
	ch <- openDesc
	ch <- earliestOpen
	ch <- untoldDeadline
	ch <- pendingDesc
	ch <- earliestPending
	ch <- deferredDesc
	ch <- undeliveredDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.store.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(storeUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(storeUp, prometheus.GaugeValue, 1)
	failed := 0
	for _, state := range lifecycle.States() {
		for _, typ := range lifecycle.Types() {
			n := st.Requests[store.Kind{State: state, Type: typ}]
			ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.GaugeValue, float64(n), string(state), string(typ))
			if state == lifecycle.Failed {
				failed += n
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(unresolved, prometheus.GaugeValue, float64(failed))
	ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(st.OutboxDepth))
	age := 0.0
	if !st.OldestUnpublished.IsZero() {
		age = time.Since(st.OldestUnpublished).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(outboxAge, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(waitingCertificates, prometheus.GaugeValue, float64(st.CertificatesWaiting))

	p, err := ReadPressure(ctx, c.store, c.now())
	if err != nil {
		return
	}
	for _, b := range OpenByTimeLeft(p) {
		ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, float64(b.Count), b.Name)
	}
	byClass := map[string]time.Time{}
	for tenant, dl := range p.EarliestByTenant {
		class := c.tenants.Class(tenant)
		if cur, ok := byClass[class]; !ok || dl.Before(cur) {
			byClass[class] = dl
		}
	}
	for _, class := range c.tenants.Classes() {
		ch <- prometheus.MustNewConstMetric(earliestOpen, prometheus.GaugeValue, unixOrZero(byClass[class]), class)
	}
	ch <- prometheus.MustNewConstMetric(untoldDeadline, prometheus.GaugeValue, unixOrZero(p.UntoldDeadline))
	for _, s := range c.systems {
		pt := p.Pending[s]
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(pt.Count), s)
		ch <- prometheus.MustNewConstMetric(earliestPending, prometheus.GaugeValue, unixOrZero(pt.EarliestDeadline), s)
	}
	for _, b := range DeferredByDue(p) {
		ch <- prometheus.MustNewConstMetric(deferredDesc, prometheus.GaugeValue, float64(b.Count), b.Name)
	}
	for _, name := range c.channels {
		n := p.UndeliveredBus
		if name == proof.ChannelWebhook {
			n = p.UndeliveredWebhook
		}
		ch <- prometheus.MustNewConstMetric(undeliveredDesc, prometheus.GaugeValue, float64(n), name)
	}
}

func unixOrZero(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.Unix())
}

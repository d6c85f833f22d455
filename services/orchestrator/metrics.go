package orchestrator

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// metrics holds the orchestrator's series. Labels name systems, states,
// outcomes and reasons, never a request id or anything of the subject.
type metrics struct {
	gatherer      prometheus.Gatherer
	created       *prometheus.CounterVec
	receipts      *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	ignored       *prometheus.CounterVec
	failed        *prometheus.CounterVec
	retries       *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	published     *prometheus.CounterVec
	publishErrors prometheus.Counter
	http          *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, st store.Store, systems []string) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		created: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_requests_created_total",
			Help: "Requests created, by type and source (api, account_deleted)."}, []string{"type", "source"}),
		receipts: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_receipts_accepted_total",
			Help: "Receipts recorded, by system and outcome."}, []string{"system", "outcome"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_receipts_rejected_total",
			Help: "Receipts rejected without changing any state, by reason."}, []string{"reason"}),
		ignored: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_receipts_ignored_total",
			Help: "Receipts for tasks already finished (duplicate) or for an older attempt (stale)."}, []string{"reason"}),
		failed: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_task_failures_total",
			Help: "Failed answers from systems."}, []string{"system"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_task_retries_total",
			Help: "Tasks attempted again after a failure or no answer."}, []string{"system"}),
		deadLetters: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_orchestrator_dead_letters_total",
			Help: "Tasks given up after the last attempt."}, []string{"system"}),
		published: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_outbox_published_total",
			Help: "Outbox messages published to the bus, by CloudEvents type."}, []string{"type"}),
		publishErrors: f.NewCounter(prometheus.CounterOpts{Name: "lethe_outbox_publish_errors_total",
			Help: "Failed attempts to publish an outbox message (retried)."}),
		http: f.NewCounterVec(prometheus.CounterOpts{Name: "lethe_api_http_requests_total",
			Help: "HTTP API requests, by route and status code."}, []string{"route", "code"}),
	}
	for _, s := range systems {
		m.retries.WithLabelValues(s)
		m.deadLetters.WithLabelValues(s)
		m.failed.WithLabelValues(s)
	}
	for _, r := range []string{"malformed", "unknown_task", "mismatch", "not_published", "bad_signature", "unknown_key", "wrong_system", "key_not_valid"} {
		m.rejected.WithLabelValues(r)
	}
	for _, r := range []string{"duplicate", "stale"} {
		m.ignored.WithLabelValues(r)
	}
	reg.MustRegister(&storeCollector{store: st})
	m.gatherer = prometheus.DefaultGatherer
	if g, ok := reg.(prometheus.Gatherer); ok {
		m.gatherer = g
	}
	return m
}

func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		m.http.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
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

// storeCollector reads gauges from the store at scrape time, so they are
// right after a restart and agree between replicas.
type storeCollector struct{ store store.Store }

var (
	requestsDesc = prometheus.NewDesc("lethe_orchestrator_requests", "Requests by state and type.", []string{"state", "type"}, nil)
	outboxDesc   = prometheus.NewDesc("lethe_outbox_depth_messages", "Outbox messages not yet published.", nil, nil)
	outboxAge    = prometheus.NewDesc("lethe_outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished outbox message (0 when empty).", nil, nil)
	storeUp      = prometheus.NewDesc("lethe_orchestrator_store_up", "1 if the store answered the last scrape.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- outboxDesc
	ch <- outboxAge
	ch <- storeUp
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
	for _, state := range []string{store.StatePendingVerification, store.StateOpen, store.StateFulfilled, store.StatePartiallyRetained, store.StateFailed} {
		for _, typ := range []string{TypeErasure, TypeExport} {
			ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.GaugeValue, float64(st.Requests[[2]string{state, typ}]), state, typ)
		}
	}
	ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, float64(st.OutboxDepth))
	age := 0.0
	if !st.OldestUnpublished.IsZero() {
		age = time.Since(st.OldestUnpublished).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(outboxAge, prometheus.GaugeValue, age)
}

package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
)

// Config wires a connector to its bus and state.
type Config struct {
	// System is the name the orchestrator registered the system under.
	System   string
	Bus      bus.Bus
	Receipts ReceiptStore
	// Signer signs every receipt with the connector's key, which the
	// orchestrator must have registered for System.
	Signer *proof.Signer
	// TaskKeys hold the orchestrator's public key: a task it did not sign
	// is refused, so that credentials to the bus alone erase no one.
	TaskKeys proof.KeySet
	// SealKey opens the subject identifiers the orchestrator sealed to
	// this connector (nil: tasks must carry them in the clear).
	SealKey *proof.SealKey
	// SubjectKey is the key of the orchestrator's subject hashes, which a
	// re-application after a restore names people by (see [Reapplier]);
	// nil: such tasks fail.
	SubjectKey []byte
	// Suppressions is the connector's suppression list (see
	// [Suppressions]), kept as tasks succeed; nil: none is kept, and
	// restrictions and their lifts fail.
	Suppressions *Suppressions
	// Blobs is where exports go, encrypted (see [File]); the
	// orchestrator reads them from the same store. Nil: the connector
	// answers every export "failed".
	Blobs  blob.Store
	Logger *slog.Logger
	// Registerer receives the connector's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Retry bounds the in-process retries of a retryable failure before
	// the connector answers "failed" and leaves further attempts to the
	// orchestrator.
	RetryInitial    time.Duration
	RetryMaxElapsed time.Duration
	// Now is the connector's clock.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RetryInitial == 0 {
		c.RetryInitial = 200 * time.Millisecond
	}
	if c.RetryMaxElapsed == 0 {
		c.RetryMaxElapsed = 20 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports a missing part.
func (c Config) Validate() error {
	switch {
	case c.System == "":
		return errors.New("connector: system name is empty")
	case c.Bus == nil:
		return errors.New("connector: no bus")
	case c.Receipts == nil:
		return errors.New("connector: no receipt store")
	case c.Signer == nil:
		return errors.New("connector: no signing key")
	case len(c.TaskKeys.Keys) == 0:
		return errors.New("connector: no orchestrator key to check tasks with (its signing.key.pub)")
	case c.Signer.Key.System != c.System:
		return fmt.Errorf("connector: signing key %s is for %q, not %q", c.Signer.Key.ID, c.Signer.Key.System, c.System)
	}
	return nil
}

// refusals are the reasons a task is refused.
var refusals = []string{"bad_signature", "unknown_key", "wrong_key", "key_not_valid", notSealedToUs}

// notSealedToUs: the subject is sealed to another connector's key.
const notSealedToUs = "not_sealed_to_us"

func refusal(err error) string {
	switch {
	case errors.Is(err, proof.ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, proof.ErrWrongSystem):
		return "wrong_key"
	case errors.Is(err, proof.ErrKeyNotValid):
		return "key_not_valid"
	}
	return "bad_signature"
}

// duplicate is the outcome label of a delivery answered from a stored
// receipt: no outcome of its own, the stored receipt's again.
const duplicate = "duplicate"

type metrics struct {
	tasks    *prometheus.CounterVec
	refused  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, system string) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		tasks: f.NewCounterVec(prometheus.CounterOpts{
			Name:        "lethe_connector_tasks_total",
			Help:        "Tasks answered by the connector, by action and outcome; duplicates are deliveries answered from a stored receipt.",
			ConstLabels: prometheus.Labels{"system": system},
		}, []string{"action", "outcome"}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name:        "lethe_connector_tasks_refused_total",
			Help:        "Tasks refused without any effect because their signature is not the orchestrator's, by reason.",
			ConstLabels: prometheus.Labels{"system": system},
		}, []string{"reason"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "lethe_connector_task_duration_seconds",
			Help:        "Time a connector spent on a task, retries included.",
			ConstLabels: prometheus.Labels{"system": system},
			Buckets:     prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"action"}),
	}
	for code := range lethev1.Action_name {
		if lethev1.Action(code) == lethev1.Action_ACTION_UNSPECIFIED {
			continue
		}
		a := actionName(lethev1.Action(code))
		m.duration.WithLabelValues(a)
		for _, o := range lifecycle.Outcomes() {
			if answersAction(lethev1.Action(code), o) {
				m.tasks.WithLabelValues(a, string(o))
			}
		}
		m.tasks.WithLabelValues(a, duplicate)
	}
	for _, r := range refusals {
		m.refused.WithLabelValues(r)
	}
	return m
}

// Run consumes the system's tasks until ctx is cancelled; the task in flight
// is finished or, if cut short, redelivered later.
func Run(ctx context.Context, cfg Config, sys System) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	w := &worker{cfg: cfg, sys: sys, log: cfg.Logger.With("system", cfg.System)}
	if cfg.Registerer != nil {
		w.m = newMetrics(cfg.Registerer, cfg.System)
	}
	w.log.Info("connector consuming", "topic", events.TaskTopic(cfg.System))
	err := cfg.Bus.Consume(ctx, events.TaskTopic(cfg.System), "connector-"+cfg.System, w.handle)
	w.log.Info("connector stopped")
	return err
}

type worker struct {
	cfg Config
	sys System
	log *slog.Logger
	m   *metrics
	// tasks runs one delivery of a task at a time: deliveries of one task
	// (its attempts queued while the system was down, a redelivery) taken
	// together by the consumer's handlers would otherwise both run the
	// effect, and the one to find nothing left would answer "not found".
	tasks taskLocks
}

// taskLocks holds a lock per task id, made while a delivery holds it.
type taskLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{} // closed when the holder is done
}

// lock waits until no other delivery of task id is being handled, and
// returns the unlock; or ctx's error if ctx ends first.
func (l *taskLocks) lock(ctx context.Context, id string) (unlock func(), err error) {
	for {
		l.mu.Lock()
		done, busy := l.held[id]
		if !busy {
			if l.held == nil {
				l.held = map[string]chan struct{}{}
			}
			done = make(chan struct{})
			l.held[id] = done
			l.mu.Unlock()
			return func() {
				l.mu.Lock()
				delete(l.held, id)
				l.mu.Unlock()
				close(done)
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (w *worker) handle(ctx context.Context, msg *bus.Message) error {
	t := &lethev1.Task{}
	if err := events.Decode(msg, t, events.TypeTaskErase, events.TypeTaskExport, events.TypeTaskSweep, events.TypeTaskReapply); err != nil {
		w.log.Error("dropping undecodable task", "ce_id", msg.ID, "err", err)
		return err
	}
	if t.GetSystem() != w.cfg.System {
		w.log.Error("dropping task for another system", "task_id", t.GetTaskId(), "task_system", t.GetSystem())
		return bus.Permanent(fmt.Errorf("task for system %q", t.GetSystem()))
	}
	log := w.log.With("request_id", t.GetRequestId(), "task_id", t.GetTaskId(), "action", actionName(t.GetAction()), "attempt", t.GetAttempt())
	if err := proof.VerifyTask(w.cfg.TaskKeys, t, w.cfg.Now()); err != nil {
		// Poison: acked and never redelivered, nothing done.
		reason := refusal(err)
		if w.m != nil {
			w.m.refused.WithLabelValues(reason).Inc()
		}
		log.Error("task refused: not signed by the orchestrator", "reason", reason, "key_id", t.GetKeyId())
		return bus.Permanent(fmt.Errorf("task refused: %s", reason))
	}
	if sealed := t.GetSealedSubject(); len(sealed) > 0 {
		var subject *lethev1.Subject
		err := errors.New("no sealing key")
		if w.cfg.SealKey != nil {
			subject, err = w.cfg.SealKey.OpenSubject(sealed)
		}
		if err != nil {
			if w.m != nil {
				w.m.refused.WithLabelValues(notSealedToUs).Inc()
			}
			log.Error("task refused: its subject is not sealed to this connector", "err", err)
			return bus.Permanent(fmt.Errorf("task refused: %s", notSealedToUs))
		}
		t.Subject, t.SealedSubject = subject, nil
	}

	unlock, err := w.tasks.lock(ctx, t.GetTaskId())
	if err != nil {
		return err // shutting down: leave the task to the next delivery
	}
	defer unlock()
	stored, resumed, err := w.cfg.Receipts.Start(ctx, t.GetTaskId())
	if err != nil {
		return err
	}
	if stored != nil && retentionOver(stored, w.cfg.Now()) {
		// The data was retained by law until a date that has passed: this
		// delivery is the deferred erasure, which is new work.
		log.Info("retention over, erasing what was retained")
		stored = nil
	}
	if stored != nil {
		// A second delivery: no second effect, the same answer again.
		log.Info("task already done, answering stored receipt", "outcome", lifecycle.OutcomeOf(stored.GetOutcome()))
		w.count(t.GetAction(), duplicate)
		return w.publish(ctx, stored)
	}

	start := w.cfg.Now()
	res, err := w.do(ctx, t, log)
	if err != nil && ctx.Err() != nil {
		return err // shutting down: leave the task to the next delivery
	}
	if err == nil && resumed && t.GetAction() == lethev1.Action_ACTION_ERASE && res.Outcome == NotFound {
		// An earlier attempt may have erased the data and stopped before
		// its receipt was stored: "nothing found" now is not "nothing was
		// held". The re-scan (Remaining) still proves nothing is left.
		res.Outcome = Erased
		log.Info("resumed an interrupted erasure; nothing is left")
	}
	r := w.receipt(t, res, err)
	if r.GetOutcome() == lethev1.Outcome_OUTCOME_EXPORTED {
		if err := w.storeExport(ctx, t, res, r); err != nil {
			if ctx.Err() != nil {
				return err // shutting down: leave the task to the next delivery
			}
			r = w.receipt(t, Result{}, err)
		}
	}
	if err := w.sign(r); err != nil {
		return err
	}
	if w.m != nil {
		w.m.duration.WithLabelValues(actionName(t.GetAction())).Observe(w.cfg.Now().Sub(start).Seconds())
	}
	outcome := lifecycle.OutcomeOf(r.GetOutcome())
	w.count(t.GetAction(), string(outcome))
	if outcome == lifecycle.OutcomeFailed {
		// Not stored: the next attempt tries again.
		log.Warn("task failed", "retryable", r.GetRetryable(), "detail", r.GetDetail())
	} else {
		log.Info("task done", "outcome", outcome, "remaining", r.GetRemaining())
		// An erasure's (or a sweep's) receipt is stored before it is
		// published: once published it must be the answer to every later
		// delivery. An export, or a dry run, has no effect to guard and is
		// simply made again; storing an export would keep a copy of the
		// person's data here.
		if hasEffect(t) {
			if err := w.cfg.Receipts.Put(ctx, r); err != nil {
				return err
			}
		}
	}
	return w.publish(ctx, r)
}

// retentionOver reports whether r kept data by law until a date now past.
func retentionOver(r *lethev1.Receipt, now time.Time) bool {
	return lifecycle.OutcomeOf(r.GetOutcome()) == Retained && r.GetRetainUntil() != nil && !r.GetRetainUntil().AsTime().After(now)
}

// do runs the task, retrying retryable failures with exponential backoff.
func (w *worker) do(ctx context.Context, t *lethev1.Task, log *slog.Logger) (Result, error) {
	task := Task{
		RequestID:  t.GetRequestId(),
		TaskID:     t.GetTaskId(),
		Tenant:     t.GetTenant(),
		Subject:    Subject{Email: t.GetSubject().GetEmail(), UserID: t.GetSubject().GetUserId()},
		Deadline:   t.GetDeadline().AsTime(),
		Attempt:    int(t.GetAttempt()),
		Categories: t.GetCategories(),
	}
	op := w.sys.Erase
	sup := w.cfg.Suppressions
	switch t.GetAction() {
	case lethev1.Action_ACTION_ERASE:
		if _, ok := w.sys.(CategoryEraser); len(task.Categories) > 0 && !ok {
			return Result{}, errors.New("this system cannot erase by data category: a purpose should not name it")
		}
		if sup != nil {
			// On the list before the effect: no import of the person may
			// land between the erasure and the entry. (An erasure that
			// then fails leaves the person listed: they asked all the
			// same, and the orchestrator tries again.)
			reason := SuppressedErased
			if len(task.Categories) > 0 {
				reason = SuppressedPurpose
			}
			op = func(ctx context.Context, task Task) (Result, error) {
				if err := sup.add(ctx, task.Tenant, task.RequestID, task.Subject, reason, task.Categories); err != nil {
					return Result{}, err
				}
				return w.sys.Erase(ctx, task)
			}
		}
	case lethev1.Action_ACTION_RESTRICT:
		if sup == nil {
			return Result{}, errors.New("this connector keeps no suppression list to mark a restriction in (--subject-key)")
		}
		op = func(ctx context.Context, task Task) (Result, error) {
			// Marked first: from then on the host's processing paths
			// refuse the person; what the system holds is then counted.
			if err := sup.add(ctx, task.Tenant, task.RequestID, task.Subject, SuppressedRestricted, nil); err != nil {
				return Result{}, err
			}
			if r, ok := w.sys.(Restricter); ok {
				return r.Restrict(ctx, task)
			}
			return Result{Outcome: Restricted}, nil
		}
	case lethev1.Action_ACTION_LIFT:
		if sup == nil {
			return Result{}, errors.New("this connector keeps no suppression list to lift a restriction from (--subject-key)")
		}
		restriction := t.GetRestrictionId()
		op = func(ctx context.Context, task Task) (Result, error) {
			n, err := sup.lift(ctx, task.Tenant, restriction)
			if err != nil || n == 0 {
				return Result{Outcome: NotFound}, err
			}
			return Result{Outcome: Lifted}, nil
		}
	case lethev1.Action_ACTION_EXPORT:
		op = w.sys.Export
	case lethev1.Action_ACTION_SWEEP:
		sw, ok := w.sys.(Sweeper)
		if !ok {
			return Result{}, errors.New("this system does not apply retention sweeps: no policy should name it")
		}
		s := t.GetSweep()
		sweep := SweepTask{RunID: t.GetRequestId(), TaskID: t.GetTaskId(), Tenant: t.GetTenant(), Policy: s.GetPolicy(),
			Categories: s.GetCategories(), Clock: s.GetClock(), Cutoff: s.GetCutoff().AsTime(), DryRun: s.GetDryRun()}
		op = func(ctx context.Context, _ Task) (Result, error) { return sw.Sweep(ctx, sweep) }
	case lethev1.Action_ACTION_REAPPLY:
		re, ok := w.sys.(Reapplier)
		switch {
		case !ok:
			return Result{}, errors.New("this system does not re-apply erasures after a restore")
		case len(w.cfg.SubjectKey) == 0:
			return Result{}, errors.New("this connector has no subject key to hash identifiers with (--subject-key)")
		}
		hashes := make(map[string]bool, len(t.GetSubjectHashes()))
		for _, h := range t.GetSubjectHashes() {
			hashes[h] = true
		}
		ra := ReapplyTask{RequestID: t.GetRequestId(), TaskID: t.GetTaskId(), Tenant: t.GetTenant(), Hashes: hashes, Key: w.cfg.SubjectKey}
		op = func(ctx context.Context, _ Task) (Result, error) {
			res, err := re.Reapply(ctx, ra)
			if err == nil && sup != nil {
				// A suppression list restored with the system gets its
				// entries back too.
				err = sup.addHashes(ctx, ra.Tenant, ra.RequestID, t.GetSubjectHashes(), SuppressedErased, nil)
			}
			return res, err
		}
	default:
		return Result{}, fmt.Errorf("unknown action %v", t.GetAction())
	}
	b := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(w.cfg.RetryInitial),
		backoff.WithMaxElapsedTime(w.cfg.RetryMaxElapsed)), ctx)
	tries := 0
	return backoff.RetryNotifyWithData(func() (Result, error) {
		tries++
		res, err := op(ctx, task)
		if err != nil && !IsRetryable(err) {
			return res, backoff.Permanent(err)
		}
		return res, err
	}, b, func(err error, wait time.Duration) {
		log.Warn("retrying", "try", tries, "wait", wait, "err", err)
	})
}

// receipt builds the answer to t from what the system did.
func (w *worker) receipt(t *lethev1.Task, res Result, err error) *lethev1.Receipt {
	r := &lethev1.Receipt{
		RequestId:     t.GetRequestId(),
		TaskId:        t.GetTaskId(),
		System:        w.cfg.System,
		Action:        t.GetAction(),
		Attempt:       t.GetAttempt(),
		ConnectorTime: timestamppb.New(w.cfg.Now()),
		Sweep:         t.GetSweep(),
		Categories:    t.GetCategories(),
		RestrictionId: t.GetRestrictionId(),
	}
	if err != nil {
		r.Outcome = lifecycle.OutcomeFailed.Proto()
		r.Detail = err.Error()
		r.Retryable = IsRetryable(err)
		return r
	}
	if !answers(res.Outcome) || !answersAction(t.GetAction(), res.Outcome) {
		r.Outcome = lifecycle.OutcomeFailed.Proto()
		r.Detail = fmt.Sprintf("connector returned unknown outcome %q", res.Outcome)
		return r
	}
	r.Outcome = res.Outcome.Proto()
	cats := make([]string, 0, len(res.Counts))
	for c := range res.Counts {
		cats = append(cats, c)
	}
	sort.Strings(cats)
	for _, c := range cats {
		r.Counts = append(r.Counts, &lethev1.CategoryCount{Category: c, Count: res.Counts[c]})
	}
	r.Remaining = res.Remaining
	if res.Outcome == Retained {
		r.LegalBasis = res.LegalBasis
		r.RetainUntil = timestamppb.New(res.RetainUntil)
	}
	return r
}

// sign signs a receipt; a receipt that cannot be signed is not sent.
func (w *worker) sign(r *lethev1.Receipt) error {
	if err := proof.SignReceipt(w.cfg.Signer, r); err != nil {
		return bus.Permanent(fmt.Errorf("sign receipt: %w", err))
	}
	return nil
}

func (w *worker) publish(ctx context.Context, r *lethev1.Receipt) error {
	msg, err := events.ReceiptMessage(r, "lethe/connector/"+w.cfg.System, w.cfg.Now())
	if err != nil {
		return err
	}
	if err := w.cfg.Bus.Publish(ctx, events.TopicReceipts, msg); err != nil {
		return fmt.Errorf("publish receipt: %w", err)
	}
	return nil
}

func (w *worker) count(a lethev1.Action, outcome string) {
	if w.m != nil {
		w.m.tasks.WithLabelValues(actionName(a), outcome).Inc()
	}
}

func actionName(a lethev1.Action) string {
	switch a {
	case lethev1.Action_ACTION_EXPORT:
		return "export"
	case lethev1.Action_ACTION_SWEEP:
		return "sweep"
	case lethev1.Action_ACTION_REAPPLY:
		return "reapply"
	case lethev1.Action_ACTION_RESTRICT:
		return "restrict"
	case lethev1.Action_ACTION_LIFT:
		return "lift"
	}
	return "erase"
}

// answersAction reports whether o may answer a task of action a (a
// restriction is restricted, never erased; see lifecycle.Type.Answers).
func answersAction(a lethev1.Action, o Outcome) bool {
	t := lifecycle.Erasure
	switch a {
	case lethev1.Action_ACTION_RESTRICT:
		t = lifecycle.Restriction
	case lethev1.Action_ACTION_LIFT:
		t = lifecycle.Lift
	}
	return t.Answers(o)
}

// hasEffect reports whether a task changes its system: an erasure, or a
// sweep that is not a dry run.
func hasEffect(t *lethev1.Task) bool {
	switch t.GetAction() {
	case lethev1.Action_ACTION_ERASE, lethev1.Action_ACTION_REAPPLY, lethev1.Action_ACTION_RESTRICT, lethev1.Action_ACTION_LIFT:
		return true
	case lethev1.Action_ACTION_SWEEP:
		return !t.GetSweep().GetDryRun()
	}
	return false
}

// answers reports whether o is an outcome a [System] may return: Erased,
// Exported, NotFound, Retained, Restricted or Lifted. (A failure is an error, and a dead letter
// is the orchestrator's word, not a system's.)
func answers(o Outcome) bool { return o.Done() || o == Retained }

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/retention"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// SourceSchedule and SourceOnDemand are where a retention run came from.
const (
	SourceSchedule = "schedule"
	SourceOnDemand = "api"
)

// StartSweep opens a retention run of policy p at now: a request of type
// sweep, open at once (it is about no one, so there is no identity to
// check), with a signed sweep task per system the policy names, carrying
// the policy, its clock, its cut-off and the system's data categories. Its
// receipts, log entries and certificate are a request's.
func (e *Engine) StartSweep(ctx context.Context, p *retention.Policy, dryRun bool, source string, by *proof.Actor) (*store.Request, error) {
	return e.startSweep(ctx, p, dryRun, source, "", by)
}

// ScheduleSweep opens the scheduled run of policy p that follows its run
// at last (zero: the policy never ran). Replicas that see the same last
// run open one run between them: the run's SourceRef names the policy
// and the run it follows, and the store takes one request per
// SourceRef. The others get store.ErrDuplicate.
func (e *Engine) ScheduleSweep(ctx context.Context, p *retention.Policy, last time.Time) (*store.Request, error) {
	after := "first"
	if !last.IsZero() {
		after = strconv.FormatInt(last.UnixMilli(), 10)
	}
	return e.startSweep(ctx, p, false, SourceSchedule, "sweep:"+p.Tenant+"/"+p.Name+"/after:"+after, nil)
}

func (e *Engine) startSweep(ctx context.Context, p *retention.Policy, dryRun bool, source, ref string, by *proof.Actor) (*store.Request, error) {
	now := e.Now()
	run := proof.SweepRun{Policy: p.Name, Clock: p.Clock, Cutoff: p.Cutoff(now).UTC(), DryRun: dryRun, Systems: p.Systems}
	r, err := e.openUnattended(ctx, unattended{idPrefix: "run_", tenant: p.Tenant, typ: lifecycle.Sweep, source: source, ref: ref,
		scope: run, created: proof.Entry{Sweep: &run}, systems: p.SystemNames(), by: by}, now)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	e.log.Info("retention run started", "run_id", r.ID, "tenant", r.Tenant, "policy", p.Name, "dry_run", dryRun, "cutoff", run.Cutoff)
	e.cfg.Relay.Wake()
	return r, nil
}

// SweepOf reads what a retention run sweeps; nil for another request.
func SweepOf(r *store.Request) (*proof.SweepRun, error) {
	if r.Type != lifecycle.Sweep {
		return nil, nil
	}
	var run proof.SweepRun
	if err := json.Unmarshal([]byte(r.Scope), &run); err != nil {
		return nil, fmt.Errorf("run %s: sweep: %w", r.ID, err)
	}
	return &run, nil
}

// sweepTask is the sweep a run's task carries to system.
func sweepTask(r *store.Request, system string) (*lethev1.Sweep, error) {
	run, err := SweepOf(r)
	if err != nil {
		return nil, err
	}
	cats, ok := run.Systems[system]
	if !ok {
		return nil, errors.New("run " + r.ID + " does not sweep " + system)
	}
	return &lethev1.Sweep{Policy: run.Policy, Categories: cats, Clock: run.Clock, Cutoff: timestamppb.New(run.Cutoff), DryRun: run.DryRun}, nil
}

// swept is a retention run that ended, for its metrics.
type swept struct {
	tenant, policy string
	state          lifecycle.State
	dryRun         bool
	records        int64 // deleted, or that a dry run would delete
	when           time.Time
}

// sweptRun reads how a run ended from its tasks.
func sweptRun(r *store.Request, tasks []*store.Task, state lifecycle.State, now time.Time) (swept, error) {
	run, err := SweepOf(r)
	if err != nil {
		return swept{}, err
	}
	s := swept{tenant: r.Tenant, policy: run.Policy, state: state, dryRun: run.DryRun, when: now}
	for _, k := range tasks {
		for _, n := range k.Counts {
			s.records += n
		}
	}
	return s, nil
}

// reportSweep updates the sweep series from a run that ended.
func (e *Engine) reportSweep(s swept) {
	switch {
	case s.state == lifecycle.Failed:
		e.m.SweepFailures.WithLabelValues(s.tenant, s.policy).Inc()
	case s.dryRun:
		e.m.SweepPastPeriod.WithLabelValues(s.tenant, s.policy).Set(float64(s.records))
	default:
		e.m.SweepPastPeriod.WithLabelValues(s.tenant, s.policy).Set(0)
		e.m.SweepLast.WithLabelValues(s.tenant, s.policy).Set(float64(s.when.Unix()))
	}
	e.log.Info("retention run ended", "tenant", s.tenant, "policy", s.policy, "state", s.state, "dry_run", s.dryRun, "records", s.records)
}

// unattended is a request about no one (a retention run, a
// re-application, a lift), so there is no identity to check.
type unattended struct {
	idPrefix, tenant string
	typ              lifecycle.Type
	source           string
	// ref, if set, is the request's SourceRef: a second request with the
	// same is not opened (store.ErrDuplicate).
	ref string
	// scope is the request's scope (stored as JSON); created the created
	// entry's scope fields.
	scope   any
	created proof.Entry
	systems []string
	by      *proof.Actor
	// also, if not nil, runs in the transaction that stores the request,
	// before its log entry (it may lock another request).
	also func(context.Context, store.Tx, *store.Request) error
}

// openUnattended stores and opens at once a request about no one: its
// scope in the store, the created entry in the log, and a task per
// system, enqueued.
func (e *Engine) openUnattended(ctx context.Context, u unattended, now time.Time) (*store.Request, error) {
	tenant, typ, source, by := u.tenant, u.typ, u.source, u.by
	_, pol, specJSON, err := e.policyFor(tenant, now)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(u.scope)
	if err != nil {
		return nil, err
	}
	r := &store.Request{ID: u.idPrefix + strings.TrimPrefix(newID(now), "req_"), Tenant: tenant, Type: typ, State: lifecycle.PendingVerification,
		Source: source, SourceRef: u.ref, ReceivedAt: now, Deadline: pol.Deadline(now), DeadlinePolicy: specJSON, CreatedAt: now, UpdatedAt: now, Scope: string(b)}
	if by != nil {
		r.SubmittedBy = by.ID
	}
	err = e.cfg.Store.Tx(ctx, func(tx store.Tx) error {
		if err := tx.InsertRequest(ctx, r); err != nil {
			return err
		}
		// Before the log: locks are taken request first, then the log.
		if u.also != nil {
			if err := u.also(ctx, tx, r); err != nil {
				return err
			}
		}
		received, dl := r.ReceivedAt, r.Deadline
		entry := u.created
		entry.RequestID, entry.Event, entry.At, entry.Tenant, entry.Type = r.ID, proof.EventCreated, now, r.Tenant, r.Type
		entry.ReceivedAt, entry.Deadline, entry.Detail, entry.Actor = &received, &dl, "source="+source, by
		if err := record(ctx, tx, entry); err != nil {
			return err
		}
		for _, sys := range u.systems {
			if err := tx.InsertTask(ctx, &store.Task{ID: events.TaskID(r.ID, sys), RequestID: r.ID, System: sys, State: lifecycle.TaskPending}); err != nil {
				return err
			}
		}
		return e.open(ctx, tx, r, identity{}, Decision{Method: "other", Note: "about no one: " + string(typ)}, false, now)
	})
	if err != nil {
		return nil, err
	}
	e.m.Created.WithLabelValues(string(r.Type), r.Source).Inc()
	return r, nil
}

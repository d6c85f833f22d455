package orchestrator

import (
	"context"
	"errors"
	"time"

	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// sweep runs each retention policy every SweepInterval, counted from its
// last run (not a dry run) that the store records: an orchestrator down
// for a day runs its sweeps when it is back, once. A policy never run
// waits one interval from the start, so that a new deployment (or make
// run's demo) can be looked at, and dry-run, before anything is deleted.
//
// The last runs are read from the store at every tick, so that replicas
// see each other's runs; two replicas due at once open one run between
// them (engine.ScheduleSweep), the other being told it is a duplicate.
func (o *Orchestrator) sweep(ctx context.Context) error {
	if o.cfg.Policies == nil || len(o.cfg.Policies.List) == 0 || o.cfg.SweepInterval < 0 {
		return nil
	}
	started := o.cfg.Now()
	tick := time.NewTicker(min(o.cfg.SweepInterval/4, time.Minute))
	defer tick.Stop()
	seeded := false
	for {
		last, err := o.cfg.Store.LastSweeps(ctx)
		if err != nil && ctx.Err() == nil {
			o.log.Error("read the last retention runs", "err", err)
		}
		if err == nil {
			if !seeded {
				o.seedSweepGauge(last, started)
				seeded = true
			}
			o.runDue(ctx, last, started)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// seedSweepGauge starts the gauge of each policy's last run from the
// store (or from the start, for a policy never run), so that a restart
// does not hide a schedule that stopped; runs that end successfully move
// it on.
func (o *Orchestrator) seedSweepGauge(last map[string]time.Time, started time.Time) {
	for _, p := range o.cfg.Policies.List {
		at, ok := last[p.Tenant+"/"+p.Name]
		if !ok {
			at = started
		}
		o.m.SweepLast.WithLabelValues(p.Tenant, p.Name).Set(float64(at.Unix()))
	}
}

// runDue opens the scheduled runs that are due, given each policy's last
// run (absent: never run; then due an interval after started).
func (o *Orchestrator) runDue(ctx context.Context, last map[string]time.Time, started time.Time) {
	now := o.cfg.Now()
	for _, p := range o.cfg.Policies.List {
		prev, ran := last[p.Tenant+"/"+p.Name]
		at := prev
		if !ran {
			at = started
		}
		if now.Sub(at) < o.cfg.SweepInterval {
			continue
		}
		_, err := o.engine.ScheduleSweep(ctx, p, prev)
		switch {
		case errors.Is(err, store.ErrDuplicate):
			o.log.Debug("a scheduled retention run is already open (another replica)", "tenant", p.Tenant, "policy", p.Name)
		case err != nil && ctx.Err() == nil:
			o.log.Error("start a scheduled retention run", "tenant", p.Tenant, "policy", p.Name, "err", err)
		}
	}
}

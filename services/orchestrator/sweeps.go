package orchestrator

import (
	"context"
	"time"

	"github.com/lethe-dev/lethe/services/orchestrator/engine"
)

// sweep runs each retention policy every SweepInterval, counted from its
// last run (not a dry run) that the store records: an orchestrator down
// for a day runs its sweeps when it is back, once. A policy never run
// waits one interval from the start, so that a new deployment (or make
// run's demo) can be looked at, and dry-run, before anything is deleted.
func (o *Orchestrator) sweep(ctx context.Context) error {
	if o.cfg.Policies == nil || len(o.cfg.Policies.List) == 0 || o.cfg.SweepInterval < 0 {
		return nil
	}
	var last map[string]time.Time
	started := o.cfg.Now()
	tick := time.NewTicker(min(o.cfg.SweepInterval/4, time.Minute))
	defer tick.Stop()
	for {
		if last == nil {
			var err error
			if last, err = o.cfg.Store.LastSweeps(ctx); err != nil {
				o.log.Error("read the last retention runs", "err", err)
			}
			// The gauge of the last run starts from the store (or from now,
			// for a policy never run), so that a restart does not hide a
			// schedule that stopped.
			for _, p := range o.cfg.Policies.List {
				at, ok := last[p.Tenant+"/"+p.Name]
				if !ok {
					at = started
				}
				if last != nil {
					o.m.SweepLast.WithLabelValues(p.Tenant, p.Name).Set(float64(at.Unix()))
				}
			}
		}
		if last != nil {
			now := o.cfg.Now()
			for _, p := range o.cfg.Policies.List {
				key := p.Tenant + "/" + p.Name
				at, ok := last[key]
				if !ok {
					at = started
				}
				if now.Sub(at) < o.cfg.SweepInterval {
					continue
				}
				if _, err := o.engine.StartSweep(ctx, p, false, engine.SourceSchedule, nil); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					o.log.Error("start a scheduled retention run", "tenant", p.Tenant, "policy", p.Name, "err", err)
					continue
				}
				last[key] = now
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

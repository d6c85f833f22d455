package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// ErrBadLift is a lift of something that is no restriction, or of one
// not yet in place or already lifted.
var ErrBadLift = errors.New("bad lift")

// restrictionScope is what a restriction keeps in its request's scope
// once a lift of it is opened, so that it is lifted once.
type restrictionScope struct {
	LiftedBy string `json:"lifted_by"`
}

// Lift opens the lift of restriction id (Art. 18): a request of type
// lift, about no one, with a task to each system that answered the
// restriction, naming the restriction, whose marks the system removes.
// Its receipts and certificate are the evidence of the lift, as the
// restriction's are of the restriction; once every system has lifted,
// the restriction's log records it and its certificate is issued again.
// Art. 18(3) wants the person told before the lift: the caller does,
// and says so by the reason.
func (e *Engine) Lift(ctx context.Context, id, reason string, by *proof.Actor) (*store.Request, error) {
	if !slices.Contains(lifecycle.LiftReasons, reason) {
		return nil, fmt.Errorf("%w: reason must be one of %v", ErrBadLift, lifecycle.LiftReasons)
	}
	var r *store.Request
	var tasks []*store.Task
	liftable := func(ctx context.Context, tx store.Tx) (err error) {
		if r, err = tx.Request(ctx, id); err != nil {
			return err
		}
		switch {
		case r.Type != lifecycle.Restriction:
			return fmt.Errorf("%w: request %s is a %s, not a restriction", ErrBadLift, id, r.Type)
		case !r.State.Ended() || r.State == lifecycle.Denied || r.State == lifecycle.Expired:
			return fmt.Errorf("restriction %s is %s, not in place: %w", id, r.State, ErrConflict)
		case r.Scope != "":
			return fmt.Errorf("restriction %s is already lifted (by %s): %w", id, LiftedBy(r), ErrConflict)
		}
		tasks, err = tx.Tasks(ctx, id)
		return err
	}
	if err := e.cfg.Store.Tx(ctx, func(tx store.Tx) error { return liftable(ctx, tx) }); err != nil {
		return nil, err
	}
	var systems []string
	for _, k := range tasks {
		if k.State == lifecycle.TaskAnswered {
			systems = append(systems, k.System)
		}
	}
	now := e.Now()
	scope := proof.LiftScope{Restriction: id, Reason: reason}
	mark := func(ctx context.Context, tx store.Tx, lift *store.Request) error {
		// Checked again in the transaction that opens the lift: of two
		// lifts at once, one opens.
		if err := liftable(ctx, tx); err != nil {
			return err
		}
		b, err := json.Marshal(restrictionScope{LiftedBy: lift.ID})
		if err != nil {
			return err
		}
		r.Scope, r.UpdatedAt = string(b), now
		return e.updateRequest(ctx, tx, r)
	}
	lift, err := e.openUnattended(ctx, unattended{idPrefix: "req_", tenant: r.Tenant, typ: lifecycle.Lift, source: SourceOnDemand,
		scope: scope, created: proof.Entry{Lift: &scope}, systems: systems, by: by, also: mark}, now)
	if err != nil {
		return nil, fmt.Errorf("lift: %w", err)
	}
	e.log.Info("restriction lift started", "request_id", lift.ID, "restriction", id, "reason", reason)
	e.cfg.Relay.Wake()
	return lift, nil
}

// LiftOf reads which restriction a lift lifts; nil for another request.
func LiftOf(r *store.Request) (*proof.LiftScope, error) {
	if r.Type != lifecycle.Lift {
		return nil, nil
	}
	var s proof.LiftScope
	if err := json.Unmarshal([]byte(r.Scope), &s); err != nil {
		return nil, fmt.Errorf("request %s: lift: %w", r.ID, err)
	}
	return &s, nil
}

// LiftedBy names the lift of a restriction; "" while none.
func LiftedBy(r *store.Request) string {
	if r.Type != lifecycle.Restriction || r.Scope == "" {
		return ""
	}
	var s restrictionScope
	if json.Unmarshal([]byte(r.Scope), &s) != nil {
		return ""
	}
	return s.LiftedBy
}

// lifted records, once every system has lifted a restriction, the lift in
// the restriction's log, and issues its certificate again: it then shows
// the restriction over.
func (e *Engine) lifted(ctx context.Context, tx store.Tx, fx *effects, lift *store.Request, now time.Time) error {
	s, err := LiftOf(lift)
	if err != nil {
		return err
	}
	r, err := tx.Request(ctx, s.Restriction)
	if err != nil {
		return err
	}
	if err := record(ctx, tx, proof.Entry{RequestID: r.ID, Event: proof.EventLifted, At: now,
		Lift: &proof.LiftScope{Restriction: r.ID, Reason: s.Reason, By: lift.ID}}); err != nil {
		return err
	}
	return e.issue(ctx, tx, fx, r)
}

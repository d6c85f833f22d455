package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// ErrBadDecision is returned for a decision whose method, ground or note
// is not acceptable; its message says which.
var ErrBadDecision = errors.New("bad decision")

// ErrNotPending is the conflict of a refusal once tasks have gone out: the
// systems may have acted already.
var ErrNotPending = fmt.Errorf("only a request waiting for its identity check can be refused: once verified, its systems have been asked: %w", ErrConflict)

// Decision is a person's decision on a request through the API: an
// identity check (Method) or a refusal (Ground).
type Decision struct {
	Actor  proof.Actor
	Method string
	Ground string
	Note   string
}

func checkNote(note string) error {
	switch {
	case !utf8.ValidString(note):
		return fmt.Errorf("note is not valid UTF-8: %w", ErrBadDecision)
	case len(note) > lifecycle.MaxNote:
		return fmt.Errorf("note is longer than %d bytes (it is a line for the record and must hold no personal data): %w", lifecycle.MaxNote, ErrBadDecision)
	}
	return nil
}

// CheckVerification checks an identity check's method and note.
func CheckVerification(d Decision) error {
	if !slices.Contains(lifecycle.VerificationMethods, d.Method) {
		return fmt.Errorf("method must be one of %s: %w", strings.Join(lifecycle.VerificationMethods, ", "), ErrBadDecision)
	}
	return checkNote(d.Note)
}

// CheckDenial checks a refusal's ground and note.
func CheckDenial(d Decision) error {
	if !slices.Contains(lifecycle.DenialGrounds, d.Ground) {
		return fmt.Errorf("reason must be one of %s: %w", strings.Join(lifecycle.DenialGrounds, ", "), ErrBadDecision)
	}
	return checkNote(d.Note)
}

// Deny refuses a request waiting for its identity check (Art. 12(5): it
// is manifestly unfounded or excessive; or the identity could not be
// established): it ends denied, its identifiers are dropped, and its
// certificate records the ground and who decided. It returns
// store.ErrNotFound, ErrBadDecision or ErrConflict.
func (e *Engine) Deny(ctx context.Context, id string, d Decision) (*store.Request, error) {
	if err := CheckDenial(d); err != nil {
		return nil, err
	}
	var r *store.Request
	err := e.change(ctx, func(tx store.Tx, fx *effects) error {
		var err error
		if r, err = tx.Request(ctx, id); err != nil {
			return err
		}
		if r.State != lifecycle.PendingVerification {
			return ErrNotPending
		}
		now := e.Now()
		r.DenialNote = d.Note
		entry := proof.Entry{RequestID: r.ID, Event: proof.EventDenied, At: now, Actor: &d.Actor, Ground: d.Ground, NoteSHA256: noteHash(d.Note)}
		return e.end(ctx, tx, fx, r, lifecycle.Denied, entry, now)
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// ExpireUnverified ends the requests whose identity check has waited
// longer than their tenant allows (expired, identifiers dropped). Each
// tenant with a wait of its own is looked at apart, so that a tenant that
// waits long never holds up the others. It returns how many it ended.
func (e *Engine) ExpireUnverified(ctx context.Context) (int, error) {
	now := e.Now()
	def, own := e.cfg.Deadlines.VerificationExpiries()
	type group struct {
		wait         time.Duration
		only, except []string
	}
	groups := []group{{wait: def, except: slices.Sorted(maps.Keys(own))}}
	for tenant, wait := range own {
		groups = append(groups, group{wait: wait, only: []string{tenant}})
	}
	n := 0
	err := e.change(ctx, func(tx store.Tx, fx *effects) error {
		n = 0
		for _, g := range groups {
			due, err := tx.UnverifiedBefore(ctx, now.Add(-g.wait), g.only, g.except, RetryBatch)
			if err != nil {
				return err
			}
			for _, r := range due {
				entry := proof.Entry{RequestID: r.ID, Event: proof.EventExpired, At: now, Detail: "identity not checked within " + g.wait.String()}
				if err := e.end(ctx, tx, fx, r, lifecycle.Expired, entry, now); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// end ends a request that no system took part in (denied, expired): the
// subject's identifiers go, the end is logged and certified.
func (e *Engine) end(ctx context.Context, tx store.Tx, fx *effects, r *store.Request, state lifecycle.State, entry proof.Entry, now time.Time) error {
	r.State, r.UpdatedAt, r.CompletedAt, r.AnsweredAt = state, now, now, now
	forget(r)
	fx.forgot = true
	if err := e.updateRequest(ctx, tx, r); err != nil {
		return err
	}
	if err := record(ctx, tx, entry); err != nil {
		return err
	}
	fx.ended = append(fx.ended, ending{r.ID, r.Type, state, string(state)})
	return e.issue(ctx, tx, fx, r)
}

func noteHash(note string) string {
	if note == "" {
		return ""
	}
	return proof.ReasonHash(note)
}

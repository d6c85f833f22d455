package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// maxReason bounds an extension's reason: a few sentences for the person.
const maxReason = 2000

// Extension refusals; each is an ErrConflict too.
var (
	ErrAlreadyExtended = fmt.Errorf("the deadline was already extended, and Art. 12(3) allows one extension: %w", ErrConflict)
	ErrTooLate         = fmt.Errorf("the original deadline has passed: an extension must be made, and the person told, within the first month: %w", ErrConflict)
	ErrEnded           = fmt.Errorf("the request has been answered: there is no deadline left to extend: %w", ErrConflict)
)

// ErrBadReason is returned for a missing or oversized reason.
var ErrBadReason = errors.New("bad reason")

// checkReason checks an extension's reason. Its messages never repeat it.
func checkReason(reason string) error {
	switch {
	case strings.TrimSpace(reason) == "":
		return fmt.Errorf("reason is required: Art. 12(3) asks that the person be told the reasons for the delay: %w", ErrBadReason)
	case !utf8.ValidString(reason):
		return fmt.Errorf("reason is not valid UTF-8: %w", ErrBadReason)
	case len(reason) > maxReason:
		return fmt.Errorf("reason is longer than %d bytes: %w", maxReason, ErrBadReason)
	}
	return nil
}

// Extend extends a request's deadline by two further months (GDPR Art.
// 12(3)): once, before the original deadline, with a reason the person is
// told. The new deadline is the earlier of receipt + 3 months and original
// deadline + 2 months (deadline.Policy.Extended). In the same transaction
// it logs the extension (the reason as a hash: the log is kept forever) and
// writes the notice to the person into the notification outbox.
func (e *Engine) Extend(ctx context.Context, id, reason string, by *proof.Actor) (*store.Request, error) {
	if err := checkReason(reason); err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	var r *store.Request
	err := e.cfg.Store.Tx(ctx, func(tx store.Tx) error {
		now := e.Now()
		var err error
		if r, err = tx.Request(ctx, id); err != nil {
			return err
		}
		switch {
		case !r.ExtendedAt.IsZero():
			return ErrAlreadyExtended
		case r.State.Ended():
			return ErrEnded
		case now.After(r.Deadline):
			return ErrTooLate
		}
		_, pol, err := RequestPolicy(r)
		if err != nil {
			return err
		}
		r.OriginalDeadline, r.Deadline = r.Deadline, pol.Extended(r.ReceivedAt)
		r.ExtendedAt, r.ExtensionReason, r.UpdatedAt = now, reason, now
		if err := e.updateRequest(ctx, tx, r); err != nil {
			return err
		}
		original, extended := r.OriginalDeadline, r.Deadline
		if err := record(ctx, tx, proof.Entry{RequestID: r.ID, Event: proof.EventExtended, At: now,
			Deadline: &extended, OriginalDeadline: &original, ReasonSHA256: proof.ReasonHash(reason), Actor: by}); err != nil {
			return err
		}
		return e.enqueueExtensionNotice(ctx, tx, r, now)
	})
	if err != nil {
		return nil, err
	}
	e.m.Extensions.WithLabelValues(string(r.Type)).Inc()
	e.log.Info("deadline extended", "request_id", r.ID, "original_deadline", r.OriginalDeadline, "deadline", r.Deadline)
	e.cfg.Notifier.Wake()
	return r, nil
}

// policyFor returns the deadline policy of a tenant for a request received
// at received, as it is kept with the request ("" for the default).
func (e *Engine) policyFor(tenant string, received time.Time) (deadline.Spec, deadline.Policy, string, error) {
	spec := e.cfg.Deadlines.Spec(tenant).For(received)
	pol, err := spec.Policy()
	if err != nil {
		return spec, pol, "", err
	}
	if spec.IsDefault() {
		return deadline.Spec{}, pol, "", nil
	}
	b, err := json.Marshal(spec)
	return spec, pol, string(b), err
}

// RequestPolicy reads the deadline policy kept with a request (nil for the
// default).
func RequestPolicy(r *store.Request) (*deadline.Spec, deadline.Policy, error) {
	if r.DeadlinePolicy == "" {
		return nil, deadline.Policy{}, nil
	}
	var spec deadline.Spec
	if err := json.Unmarshal([]byte(r.DeadlinePolicy), &spec); err != nil {
		return nil, deadline.Policy{}, fmt.Errorf("request %s: deadline policy: %w", r.ID, err)
	}
	pol, err := spec.Policy()
	return &spec, pol, err
}

// Preview is the deadline a request would have: "when would a request
// received then be due?", for a privacy team planning ahead. Nothing is
// stored or logged.
type Preview struct {
	ReceivedAt time.Time
	Deadline   time.Time
	// Extended is the deadline an extension would give (Art. 12(3)).
	Extended time.Time
	Spec     deadline.Spec
}

// Preview counts the deadline of a request of tenant received at received
// (now when zero) by the same arithmetic Submit uses.
func (e *Engine) Preview(tenant string, received time.Time) (Preview, error) {
	received = e.receivedAt(received)
	spec, pol, _, err := e.policyFor(tenant, received)
	if err != nil {
		return Preview{}, err
	}
	return Preview{ReceivedAt: received, Deadline: pol.Deadline(received).UTC(), Extended: pol.Extended(received).UTC(), Spec: spec}, nil
}

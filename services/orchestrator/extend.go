package orchestrator

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
func (o *Orchestrator) Extend(ctx context.Context, id, reason string) (*store.Request, error) {
	if err := checkReason(reason); err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	var r *store.Request
	err := o.store.Tx(ctx, func(tx store.Tx) error {
		now := o.now()
		var err error
		if r, err = tx.Request(id); err != nil {
			return err
		}
		switch {
		case !r.ExtendedAt.IsZero():
			return ErrAlreadyExtended
		case r.State != store.StatePendingVerification && r.State != store.StateOpen:
			return ErrEnded
		case now.After(r.Deadline):
			return ErrTooLate
		}
		_, pol, err := requestPolicy(r)
		if err != nil {
			return err
		}
		r.OriginalDeadline, r.Deadline = r.Deadline, pol.Extended(r.ReceivedAt)
		r.ExtendedAt, r.ExtensionReason, r.UpdatedAt = now, reason, now
		if err := tx.UpdateRequest(r); err != nil {
			return err
		}
		original, extended := r.OriginalDeadline, r.Deadline
		if err := o.record(tx, proof.Entry{RequestID: r.ID, Event: proof.EventExtended, At: now,
			Deadline: &extended, OriginalDeadline: &original, ReasonSHA256: proof.ReasonHash(reason)}); err != nil {
			return err
		}
		return o.enqueueExtensionNotice(tx, r, now)
	})
	if err != nil {
		return nil, err
	}
	o.m.extensions.WithLabelValues(r.Type).Inc()
	o.log.Info("deadline extended", "request_id", r.ID, "original_deadline", r.OriginalDeadline, "deadline", r.Deadline)
	o.wakeNotifier()
	return r, nil
}

// policyFor returns the deadline policy of a tenant for a request received
// at received, as it is kept with the request ("" for the default).
func (o *Orchestrator) policyFor(tenant string, received time.Time) (deadline.Spec, deadline.Policy, string, error) {
	spec := o.cfg.Deadlines.Spec(tenant).For(received)
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

// requestPolicy reads the deadline policy kept with a request.
func requestPolicy(r *store.Request) (*deadline.Spec, deadline.Policy, error) {
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

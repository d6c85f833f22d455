// Package connector is the SDK a connector author builds on. A connector
// implements [System] for the system it knows (erase and export one subject's
// data); the SDK consumes its tasks from the bus, makes each erasure happen
// once (a second delivery answers the stored receipt), retries
// retryable failures with backoff, publishes receipts, and shuts down
// gracefully.
//
// The main of a connector binary (flags, the bus from a URL, signals, the
// metrics endpoint) is package connectorcmd, so that this package links no
// broker client: a connector author's package and its tests build on [Run]
// or [Start] with any bus.Bus.
package connector

import (
	"context"
	"errors"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
)

// Subject identifies the data subject of a task. It is personal data: never
// log it, put it in an error, or use it as a metric label.
type Subject struct {
	Email  string
	UserID string
}

// Task is one system's part of one request.
type Task struct {
	RequestID string
	TaskID    string
	Tenant    string
	Subject   Subject
	Deadline  time.Time
	Attempt   int
	// Categories, when set, limit an erasure to those data categories (a
	// consent withdrawal, an objection): only they go, and the system
	// suppresses the person for them. Only a [CategoryEraser] gets such a
	// task.
	Categories []string
}

// CategoryEraser is implemented by a System whose Erase honours
// Task.Categories. The SDK answers "failed" to a limited erasure for any
// other system, rather than let it erase everything.
type CategoryEraser interface {
	ErasesByCategory()
}

// Outcome is a system's answer to a task: the outcome of package lifecycle,
// the one vocabulary the orchestrator, the certificates and the CLI speak.
type Outcome = lifecycle.Outcome

// Outcomes a [System] returns. A system that fails returns an error instead
// (see [Retryable]); the SDK answers lifecycle.OutcomeFailed for it.
const (
	Erased   = lifecycle.Erased
	Exported = lifecycle.Exported
	NotFound = lifecycle.NotFound // the system holds nothing of the subject
	Retained = lifecycle.Retained // kept by law (Art. 17(3)), until a date
	// Restricted: the person's data is kept and marked not to be processed
	// (Art. 18); Lifted: the marks are gone.
	Restricted = lifecycle.Restricted
	Lifted     = lifecycle.Lifted
)

// Restricter is implemented by a [System] that can say what of a person
// a restriction of processing (Art. 18) covers. The SDK marks the person
// restricted on the connector's suppression list (which the host's
// processing paths ask) whether or not the system implements it; then
// Restrict, which must change nothing, returns Restricted with the counts
// per data category of the records now restricted, or NotFound when the
// system holds nothing of the person.
type Restricter interface {
	Restrict(ctx context.Context, t Task) (Result, error)
}

// Result is what a [System] did.
type Result struct {
	Outcome Outcome
	// Counts says how many records per data category were erased, exported
	// or retained. Category names are part of the connector's documentation.
	Counts map[string]int64
	// LegalBasis and RetainUntil explain a Retained outcome (Art. 17(3)).
	LegalBasis  string
	RetainUntil time.Time
	// Remaining is how many of the subject's records a look made after the
	// effect still finds: 0 once erased, the retained records otherwise.
	Remaining int64
	// Export holds the subject's records for an export, as JSON grouped
	// by data category, then by table (see [Records]); Files its files.
	// The SDK writes both to the blob store, never to the bus.
	Export []byte
	Files  []File
}

// System is one system holding personal data.
//
// Both methods must be idempotent: the SDK calls them again for a task whose
// receipt was lost in a crash. They must be safe for concurrent use: the
// SDK handles as many tasks at once as its bus hands out (32 on NATS,
// busurl.ServiceHandlers). They return a [Retryable] error for a failure
// that may pass (a timeout, a vendor's 503), any other error for one that
// will not. Errors must not contain personal data.
type System interface {
	Erase(ctx context.Context, t Task) (Result, error)
	Export(ctx context.Context, t Task) (Result, error)
}

// Seeder is implemented by demo systems that can fill themselves with n
// sample people (person-0001@example.com, ...).
type Seeder interface {
	Seed(ctx context.Context, n int) error
}

type retryableError struct{ err error }

func (e retryableError) Error() string { return e.err.Error() }
func (e retryableError) Unwrap() error { return e.err }

// Retryable marks err as a failure that another attempt may not meet.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return retryableError{err}
}

// IsRetryable reports whether err was marked with [Retryable].
func IsRetryable(err error) bool {
	var r retryableError
	return errors.As(err, &r)
}

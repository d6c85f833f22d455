// Package connector is the SDK a connector author builds on. A connector
// implements [System] for the system it knows (erase and export one subject's
// data); the SDK consumes its tasks from the bus, makes each erasure happen
// once (a second delivery answers the stored receipt), retries
// retryable failures with backoff, publishes receipts, and shuts down
// gracefully.
package connector

import (
	"context"
	"errors"
	"time"
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
}

// Outcome is a system's answer to a task.
type Outcome string

// Outcomes a [System] returns.
const (
	Erased   Outcome = "erased"
	Exported Outcome = "exported"
	NotFound Outcome = "not_found"
	Retained Outcome = "retained"
)

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
	// Export holds the subject's records, as JSON, for an export.
	Export []byte
}

// System is one system holding personal data.
//
// Both methods must be idempotent: the SDK calls them again for a task whose
// receipt was lost in a crash. They return a [Retryable] error for a failure
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

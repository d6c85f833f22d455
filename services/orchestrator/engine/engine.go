// Package engine is the lifecycle of data-subject requests: it submits
// and verifies them, extends their deadlines, records the systems'
// receipts, retries silent or failing systems, ends requests and issues
// their certificates. Every change is one store transaction that also
// appends its evidence to the transparency log and writes what must go
// out (tasks, notices) into the store's outboxes; metrics, logs and the
// wake-ups of the loops that empty those outboxes follow the commit.
//
// It knows nothing of HTTP or of how messages reach the bus: the API
// (package httpapi) and the orchestrator's loops call it.
package engine

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/deadline"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/metrics"
	"github.com/lethe-dev/lethe/services/orchestrator/outbox"
	"github.com/lethe-dev/lethe/services/orchestrator/retention"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// Source is the CloudEvents source of what the orchestrator publishes.
const Source = "lethe/orchestrator"

// Sources of requests.
const (
	SourceAPI            = "api"
	SourceAccountDeleted = "account_deleted"
)

// AccountDeletedRef is the source reference of the request an account
// deletion event opens.
func AccountDeletedRef(eventID string) string { return SourceAccountDeleted + ":" + eventID }

// ErrConflict is returned for a transition the request's state forbids.
var ErrConflict = errors.New("conflict")

// KeySource gives the keys that may sign receipts, as they stand now.
type KeySource interface {
	KeySet() proof.KeySet
}

// Config is what the lifecycle needs, ready to use.
type Config struct {
	Store store.Store
	// Systems are the registered systems, sorted: a request is done when
	// every one of them has answered.
	Systems []string
	// MaxAttempts is the number of attempts a task gets before it is
	// dead-lettered.
	MaxAttempts int
	// Witnessed: witnesses cosign the log's checkpoints, and certificates
	// are issued on cosigned checkpoints only (IssueWitnessed).
	Witnessed bool
	// LogOrigin names the log in its checkpoints (see proof.SignCheckpoint;
	// "": DefaultLogOrigin).
	LogOrigin string
	// ReapplyChunk is the most keyed hashes one re-application task
	// carries (0: DefaultReapplyChunk); more are split into parts.
	ReapplyChunk int
	// RetryInitial is the first wait for an answer; each further attempt
	// waits twice as long, up to RetryMax.
	RetryInitial, RetryMax time.Duration
	// Objective is how soon a request should be fulfilled, for the SLO
	// metric.
	Objective time.Duration
	// Deadlines are the tenants' deadline policies; nil counts every
	// deadline in UTC without rolling.
	Deadlines *deadline.Tenants
	// NoticeChannels are the channels a notice must reach before its copy
	// of the person's contact is dropped.
	NoticeChannels []string
	// HashKey keys the hash that replaces subject identifiers once a
	// request has ended.
	HashKey []byte
	// Signer signs tree heads and certificates; Keys checks receipts.
	Signer *proof.Signer
	Keys   KeySource
	// Policies are the tenants' retention policies: the purposes a
	// consent withdrawal or an objection names.
	Policies *retention.Policies
	// SealKey is the orchestrator's own sealing key: it seals the
	// identifiers the store keeps and opens the export keys connectors
	// sealed to the orchestrator. Blobs holds the exports, encrypted;
	// ExportExpiry is how long an export waits to be collected.
	SealKey      *proof.SealKey
	Blobs        blob.Store
	ExportExpiry time.Duration
	// Relay and Notifier are woken after a commit that gave them work;
	// Forgot after one that dropped a request's identifiers (the store's
	// log files are then scrubbed of them).
	Relay, Notifier, Forgot outbox.Signal
	// Certifier is woken after a commit that left a certificate waiting
	// to be issued (see IssueHeld).
	Certifier outbox.Signal
	Metrics   *metrics.Metrics
	Logger    *slog.Logger
	Now       func() time.Time
}

// Engine is the lifecycle of requests over one store.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics.Metrics
	progress progress
}

// New returns the lifecycle over cfg's ready parts.
func New(cfg Config) *Engine {
	cfg.LogOrigin = cmp.Or(cfg.LogOrigin, DefaultLogOrigin)
	return &Engine{cfg: cfg, log: cfg.Logger, m: cfg.Metrics}
}

// DefaultLogOrigin names the log of a deployment that names none: fine
// for a demo; a deployment should name its own (--log-origin).
const DefaultLogOrigin = "lethe.localhost/log"

// Now is the engine's clock, to the millisecond that the store and the
// log keep.
func (e *Engine) Now() time.Time { return e.cfg.Now().UTC().Truncate(time.Millisecond) }

// Keys are the keys that verify certificates: the orchestrator's and every
// registered connector's.
func (e *Engine) Keys() proof.KeySet { return e.cfg.Keys.KeySet() }

// receivedAt is a time of receipt as a request keeps it: in UTC, to the
// millisecond; now when t is zero (not given).
func (e *Engine) receivedAt(t time.Time) time.Time {
	if t.IsZero() {
		return e.Now()
	}
	return t.UTC().Truncate(time.Millisecond)
}

// NewRequest is a request as it arrives.
type NewRequest struct {
	Type       lifecycle.Type
	Tenant     string
	Email      string
	UserID     string
	ReceivedAt time.Time // zero: now
	Verified   bool
	Source     string // SourceAPI | SourceAccountDeleted
	SourceRef  string // unique per source event; "" for none
	// By is who submitted it through the API (nil for an event); the log
	// names them, and an intake token reads only what it submitted.
	By *proof.Actor
	// Purposes are, for a consent withdrawal or an objection, the purposes
	// (the tenant's retention policies) it covers.
	Purposes []string
}

var (
	tenantFormat = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	userIDFormat = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)

	// ErrTenantFormat is the error for a malformed tenant name.
	ErrTenantFormat = errors.New("tenant must be 1-63 lowercase letters, digits, '-' or '_'")
)

// ValidTenant reports whether s is a well-formed tenant name.
func ValidTenant(s string) bool { return tenantFormat.MatchString(s) }

// Validate checks a new request, wherever it came from. Its messages never
// repeat the subject's identifiers: an error message may end up in a log.
func Validate(nr NewRequest) error {
	switch {
	case !slices.Contains(lifecycle.Types(), nr.Type):
		return fmt.Errorf("type must be one of %q", lifecycle.Types())
	case nr.Type.ByPurpose() && len(nr.Purposes) == 0:
		return fmt.Errorf("a %s names the purposes it covers (purposes: GET /v1/policies lists them)", nr.Type)
	case !nr.Type.ByPurpose() && len(nr.Purposes) > 0:
		return fmt.Errorf("purposes are for a %s or an %s only", lifecycle.ConsentWithdrawal, lifecycle.Objection)
	case nr.Tenant == "":
		return errors.New("tenant is required")
	case !ValidTenant(nr.Tenant):
		return ErrTenantFormat
	case nr.Email == "":
		return errors.New("subject.email is required")
	case !validEmail(nr.Email):
		return errors.New("subject.email is not a valid email address")
	case nr.UserID != "" && !userIDFormat.MatchString(nr.UserID):
		return errors.New("subject.user_id must be 1-128 letters, digits or ._:@-")
	}
	return nil
}

func validEmail(s string) bool {
	if len(s) > 254 || strings.TrimSpace(s) != s {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	_, domain, _ := strings.Cut(s, "@")
	return strings.Contains(domain, ".") && !strings.HasSuffix(domain, ".")
}

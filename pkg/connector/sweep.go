package connector

import (
	"context"
	"time"
)

// Clocks say what starts a retention period's clock.
const (
	// ClockRecord: the record's own time (a login, a page view).
	ClockRecord = "record"
	// ClockLastContact: the person's last contact with the company.
	ClockLastContact = "last_contact"
	// ClockAccountEnd: the end of the person's account (it was closed).
	ClockAccountEnd = "account_end"
)

// Clocks are the clocks a policy may name.
func Clocks() []string { return []string{ClockRecord, ClockLastContact, ClockAccountEnd} }

// SweepTask is one system's part of a retention sweep: delete (or
// anonymise) every record of the given data categories whose clock is
// before Cutoff, in the tenant, whoever it is about. A dry run only
// counts them.
type SweepTask struct {
	RunID  string
	TaskID string
	Tenant string
	// Policy names the retention policy (for the system's logs).
	Policy string
	// Categories are the data categories the policy covers in this
	// system (the dataset map's data_category, or category).
	Categories []string
	// Clock is what starts the period: ClockRecord, ClockLastContact or
	// ClockAccountEnd. Records with no such time (an account not ended)
	// are kept.
	Clock  string
	Cutoff time.Time
	DryRun bool
}

// Sweeper is implemented by a [System] that applies retention policies.
// Sweep deletes (or anonymises, as the system's own rules say) the
// records a sweep names and returns Erased with the counts per data
// category of what went (what would go, in a dry run), or NotFound when
// nothing was past the cut-off. It must be idempotent and safe for
// concurrent use, like Erase. A system that does not implement it answers
// every sweep "failed": its policy names a system that cannot apply it.
type Sweeper interface {
	Sweep(ctx context.Context, s SweepTask) (Result, error)
}

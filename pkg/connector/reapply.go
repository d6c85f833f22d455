package connector

import "context"

// ReapplyTask asks a system restored from a backup to erase again everyone
// erased since the backup was taken, known only by the keyed hashes of
// their identifiers: the system hashes its own rows' identifiers with Key
// (pseudonym.Hash of "email:<normalised address>" or "user_id:<id>") and
// erases those whose hash is in Hashes. Nobody's identifier travels or is
// kept to do it.
type ReapplyTask struct {
	RequestID string
	TaskID    string
	Tenant    string
	Hashes    map[string]bool
	Key       []byte
}

// Reapplier is implemented by a [System] that can re-apply erasures
// after a restore. Reapply returns Erased with the counts of what it
// erased again, or NotFound when the restore brought no one back.
type Reapplier interface {
	Reapply(ctx context.Context, t ReapplyTask) (Result, error)
}

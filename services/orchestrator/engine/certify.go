package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// record appends an entry to the transparency log, in the transaction that
// makes the change it records.
func record(ctx context.Context, tx store.Tx, e proof.Entry) error {
	_, err := tx.AppendLog(ctx, e.RequestID, e.Encode())
	return err
}

// issue signs a tree head over the log as it now stands and issues the
// request's certificate: its answers, its log entries with their inclusion
// proofs, all signed by the orchestrator. It is issued again when the
// request changes after it ended (a late answer, a deferred erasure done,
// a notice delivered).
//
// With witnesses configured, the certificate waits instead (HoldCertificate)
// for a checkpoint of the log as it is now, or later, that the witnesses
// have cosigned: IssueWitnessed issues it then, on that checkpoint.
func (e *Engine) issue(ctx context.Context, tx store.Tx, r *store.Request, tasks []*store.Task, now time.Time) error {
	size, err := tx.LogSize(ctx)
	if err != nil {
		return err
	}
	if e.cfg.Witnessed {
		return tx.HoldCertificate(ctx, r.ID, size)
	}
	root, err := tlog.TreeHash(size, store.HashReader(ctx, tx))
	if err != nil {
		return fmt.Errorf("tree hash: %w", err)
	}
	checkpoint, err := proof.SignCheckpoint(e.cfg.Signer, e.cfg.LogOrigin, size, root, now)
	if err != nil {
		return err
	}
	return e.issueOn(ctx, tx, r, tasks, size, checkpoint, now)
}

// issueOn issues the request's certificate with its log entries proved
// in the log of size entries that checkpoint (a signed note, with any
// cosignatures) signs.
func (e *Engine) issueOn(ctx context.Context, tx store.Tx, r *store.Request, tasks []*store.Task, size int64, checkpoint []byte, now time.Time) error {
	hashes := store.HashReader(ctx, tx)
	spec, _, err := RequestPolicy(r)
	if err != nil {
		return err
	}
	c := proof.Certificate{
		RequestID: r.ID, Tenant: r.Tenant, Type: r.Type, SubjectHash: r.SubjectHash,
		ReceivedAt: r.ReceivedAt, Deadline: r.Deadline, DeadlinePolicy: spec, CompletedAt: r.CompletedAt, State: r.State,
	}
	c.Log.Checkpoint = string(checkpoint)
	if !r.AnsweredAt.IsZero() && !r.AnsweredAt.Equal(r.CompletedAt) {
		c.AnsweredAt = &r.AnsweredAt
	}
	for _, k := range tasks {
		if r.State == lifecycle.Denied || r.State == lifecycle.Expired {
			break // no system was asked
		}
		if k.State != lifecycle.TaskAnswered && k.State != lifecycle.TaskDeferred {
			c.Systems = append(c.Systems, proof.SystemResult{System: k.System, Outcome: lifecycle.DeadLetter, Detail: k.Detail})
			continue
		}
		if k.Outcome == lifecycle.Resolved {
			// Fixed by hand: no receipt; the log's task_resolved entry
			// says who, and the note's hash.
			c.Systems = append(c.Systems, proof.SystemResult{System: k.System, Outcome: lifecycle.Resolved, Detail: k.Detail})
			continue
		}
		res, err := proof.SystemResultOf(k.Receipt)
		if err != nil {
			return err
		}
		c.Systems = append(c.Systems, res)
	}
	if c.Sweep, err = SweepOf(r); err != nil {
		return err
	}
	if c.Purposes, err = PurposesOf(r); err != nil {
		return err
	}
	if c.Reapply, err = ReapplyOf(r); err != nil {
		return err
	}
	if c.Lift, err = LiftOf(r); err != nil {
		return err
	}
	if r.Type == lifecycle.Export && r.State != lifecycle.Denied && r.State != lifecycle.Expired {
		if c.ExportManifestSHA256, err = manifestDigest(r, tasks); err != nil {
			return err
		}
	}
	records, err := tx.RequestLog(ctx, r.ID)
	if err != nil {
		return err
	}
	var entries []proof.Entry // those the certificate's summary reads
	for _, rec := range records {
		p, err := tlog.ProveRecord(size, rec.Index, hashes)
		if err != nil {
			return fmt.Errorf("inclusion proof: %w", err)
		}
		c.Log.Entries = append(c.Log.Entries, proof.LoggedEntry{Index: rec.Index, Entry: rec.Data, Proof: p})
		// Most entries (created, receipts, the end) are only proved: the
		// whole decoding is kept for those summarised below.
		event, err := proof.EntryEvent(rec.Data)
		if err != nil {
			return err
		}
		if !summarised[event] {
			continue
		}
		e, err := proof.DecodeEntry(rec.Data)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	for _, en := range entries {
		switch en.Event {
		case proof.EventVerified:
			c.Verification = proof.DecisionOf(en, r.VerificationNote)
		case proof.EventDenied:
			c.Denial = proof.DecisionOf(en, r.DenialNote)
		case proof.EventLifted:
			c.Lift = en.Lift
		}
	}
	if !r.ExtendedAt.IsZero() {
		first, channels := proof.NoticeDeliveries(entries, proof.NoticeExtension)
		c.Extension = &proof.Extension{At: r.ExtendedAt, Reason: r.ExtensionReason, OriginalDeadline: r.OriginalDeadline,
			NoticeDeliveredAt: first, NoticeChannels: channels}
	}
	c.DeadlineMet = !c.RespondedAt().After(c.EffectiveDeadline())
	return tx.PutCertificate(ctx, r.ID, c.Sign(e.cfg.Signer), now)
}

// summarised are the events whose entries a certificate sums up beside
// proving them: the decisions, a lift, the notices delivered.
var summarised = map[string]bool{proof.EventVerified: true, proof.EventDenied: true, proof.EventLifted: true, proof.EventNoticeDelivered: true}

// TreeHead signs the log's current size and root.
func (e *Engine) TreeHead(ctx context.Context) (proof.TreeHead, error) {
	var th proof.TreeHead
	err := e.cfg.Store.Tx(ctx, func(tx store.Tx) error {
		size, err := tx.LogSize(ctx)
		if err != nil {
			return err
		}
		root, err := tlog.TreeHash(size, store.HashReader(ctx, tx))
		if err != nil {
			return err
		}
		th = proof.SignTreeHead(e.cfg.Signer, size, root, e.Now())
		return nil
	})
	return th, err
}

// ErrBadRange is returned for a consistency proof beyond the log's end.
var ErrBadRange = errors.New("new is larger than the log")

// Consistency proves that the log of size newSize extends the log of size
// oldSize (0 <= oldSize <= newSize); ErrBadRange if the log is shorter
// than newSize.
func (e *Engine) Consistency(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
	var p tlog.TreeProof
	err := e.cfg.Store.Tx(ctx, func(tx store.Tx) error {
		size, err := tx.LogSize(ctx)
		if err != nil {
			return err
		}
		if newSize > size {
			return fmt.Errorf("%w: the log has %d entries", ErrBadRange, size)
		}
		p, err = tlog.ProveTree(newSize, oldSize, store.HashReader(ctx, tx))
		return err
	})
	return p, err
}

package engine

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// record appends an entry to the transparency log, in the transaction that
// makes the change it records.
func record(ctx context.Context, tx store.Tx, e proof.Entry) error {
	return tx.AppendLog(ctx, e.RequestID, e.Encode())
}

// issue has the request's certificate issued again for the log as it now
// stands: its answers, its log entries with their inclusion proofs, all
// signed by the orchestrator. It is issued when the request ends, and again
// when it changes after (a late answer, a deferred erasure done, a notice
// delivered).
//
// The transaction only records that the certificate waits for a checkpoint
// of the log as it is now (HoldCertificate): building it (proofs, encoding,
// signatures) is a quarter of the work of the transaction that ends a
// request, and on SQLite every transaction queues for the store's one
// writer. The certifier issues what waits once committed, in batches, off
// that writer (IssueHeld), and a reader of a certificate has it issued
// first (Certificate). With witnesses configured, it waits instead for a
// checkpoint of the log as it is now, or later, that they have cosigned
// (IssueWitnessed).
func (e *Engine) issue(ctx context.Context, tx store.Tx, fx *effects, r *store.Request) error {
	size, err := tx.LogSize(ctx)
	if err != nil {
		return err
	}
	fx.certify = true
	return tx.HoldCertificate(ctx, r.ID, size)
}

// certificate builds and signs the request's certificate with its log
// entries proved in the log of size entries that checkpoint (a signed
// note, with any cosignatures) signs.
func (e *Engine) certificate(ctx context.Context, tx store.Tx, r *store.Request, tasks []*store.Task, size int64, checkpoint []byte) ([]byte, error) {
	hashes := store.HashReader(ctx, tx)
	spec, _, err := RequestPolicy(r)
	if err != nil {
		return nil, err
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
			return nil, err
		}
		c.Systems = append(c.Systems, res)
	}
	if c.Sweep, err = SweepOf(r); err != nil {
		return nil, err
	}
	if c.Purposes, err = PurposesOf(r); err != nil {
		return nil, err
	}
	if c.Reapply, err = ReapplyOf(r); err != nil {
		return nil, err
	}
	if c.Lift, err = LiftOf(r); err != nil {
		return nil, err
	}
	if r.Type == lifecycle.Export && r.State != lifecycle.Denied && r.State != lifecycle.Expired {
		if c.ExportManifestSHA256, err = manifestDigest(r, tasks); err != nil {
			return nil, err
		}
	}
	records, err := tx.RequestLog(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	var entries []proof.Entry // those the certificate's summary reads
	for _, rec := range records {
		p, err := tlog.ProveRecord(size, rec.Index, hashes)
		if err != nil {
			return nil, fmt.Errorf("inclusion proof: %w", err)
		}
		c.Log.Entries = append(c.Log.Entries, proof.LoggedEntry{Index: rec.Index, Entry: rec.Data, Proof: p})
		// Most entries (created, receipts, the end) are only proved: the
		// whole decoding is kept for those summarised below.
		event, err := proof.EntryEvent(rec.Data)
		if err != nil {
			return nil, err
		}
		if !summarised[event] {
			continue
		}
		e, err := proof.DecodeEntry(rec.Data)
		if err != nil {
			return nil, err
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
	return c.Sign(e.cfg.Signer), nil
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

// issueBatch bounds the certificates one batch issues: on SQLite their
// writes hold the store's one writer.
const issueBatch = 100

// IssueHeld issues the certificates that wait for one (see issue), in
// batches, each on one checkpoint signed for the log as the batch read it;
// only, unless "", limits it to that request's. It returns how many it
// issued. With witnesses configured it issues none: their checkpoints do
// (IssueWitnessed).
func (e *Engine) IssueHeld(ctx context.Context, only string) (int, error) {
	if e.cfg.Witnessed {
		return 0, nil
	}
	return e.issueWaiting(ctx, witnessedOn{}, only)
}

// issueWaiting issues batch after batch (issueHeld) while a batch was
// full and issued some, and returns how many it issued in all. A full
// batch that issued none (its certificates cannot be built: they wait on,
// said in the log) ends it rather than building them again.
func (e *Engine) issueWaiting(ctx context.Context, on witnessedOn, only string) (int, error) {
	issued := 0
	for {
		n, more, err := e.issueHeld(ctx, on, only)
		issued += n
		if err != nil || !more || n == 0 {
			return issued, err
		}
	}
}

// witnessedOn is a checkpoint the witnesses cosigned: its log's size and
// the note with their cosignatures. The zero value is none: a checkpoint
// is signed for the log as it is read.
type witnessedOn struct {
	size int64
	note []byte
}

// issueHeld issues one batch of the certificates that wait: built from one
// snapshot of the store, beside its writer (Store.View), then written in
// one short transaction. A certificate is written only if its request
// still waits for no larger log than the checkpoint's: one changed again
// meanwhile waits on for the next batch, and one another replica issued
// meanwhile is not issued twice. more reports a full batch (more may wait;
// see issueWaiting).
func (e *Engine) issueHeld(ctx context.Context, on witnessedOn, only string) (issued int, more bool, err error) {
	type built struct {
		id   string
		cert store.PackedCertificate
	}
	var batch []built
	size, note := on.size, on.note
	err = e.cfg.Store.View(ctx, func(tx store.Tx) error {
		batch, more = nil, false
		if note == nil {
			var err error
			if size, err = tx.LogSize(ctx); err != nil {
				return err
			}
		}
		var ids []string
		if only != "" {
			held, err := tx.HeldCertificate(ctx, only)
			if errors.Is(err, store.ErrNotFound) || held > size {
				return nil
			}
			if err != nil {
				return err
			}
			ids = []string{only}
		} else {
			var err error
			if ids, err = tx.HeldCertificates(ctx, size, issueBatch); err != nil {
				return err
			}
			more = len(ids) == issueBatch
		}
		if len(ids) == 0 {
			return nil
		}
		if note == nil {
			root, err := tlog.TreeHash(size, store.HashReader(ctx, tx))
			if err != nil {
				return fmt.Errorf("tree hash: %w", err)
			}
			if note, err = proof.SignCheckpoint(e.cfg.Signer, e.cfg.LogOrigin, size, root, e.Now()); err != nil {
				return err
			}
		}
		for _, id := range ids {
			r, err := tx.Request(ctx, id)
			if err != nil {
				return err
			}
			tasks, err := tx.Tasks(ctx, id)
			if err != nil {
				return err
			}
			cert, err := e.certificate(ctx, tx, r, tasks, size, note)
			if err != nil {
				// One that cannot be built must not hold up the others: it
				// waits on, said and counted (lethe_orchestrator_certificates_waiting).
				e.log.Error("certificate not issued", "request_id", id, "err", err)
				continue
			}
			batch = append(batch, built{id, store.PackCertificate(cert)})
		}
		return nil
	})
	if err != nil || len(batch) == 0 {
		return 0, more, err
	}
	now := e.Now()
	err = e.cfg.Store.Tx(ctx, func(tx store.Tx) error {
		issued = 0
		for _, b := range batch {
			ok, err := tx.ReleaseCertificate(ctx, b.id, size)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if err := tx.PutCertificate(ctx, b.id, b.cert, now); err != nil {
				return err
			}
			issued++
		}
		return nil
	})
	if err != nil {
		return 0, more, err
	}
	e.m.CertificatesIssued.Add(float64(issued))
	return issued, more, nil
}

// Certificate returns the certificate of an ended request (store.ErrNotFound:
// none yet). One that waits to be issued is issued first, so that a reader
// never gets a request's certificate older than its last change, nor none
// for a request that ended; with witnesses configured, it waits for them.
func (e *Engine) Certificate(ctx context.Context, requestID string) ([]byte, error) {
	if _, err := e.IssueHeld(ctx, requestID); err != nil {
		return nil, err
	}
	return e.cfg.Store.Certificate(ctx, requestID)
}

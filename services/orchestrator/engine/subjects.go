package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// A person's identifiers are kept sealed to the orchestrator's own sealing
// key, in a request (store.Request.SealedSubject) as in a notice waiting to
// be delivered: the database file, its WAL, a replica or a backup name no
// one; only a running orchestrator, which holds the key, reads them.

// sealSubject seals a person's identifiers for the store.
func (e *Engine) sealSubject(email, userID string) ([]byte, error) {
	b, err := proof.SealSubject(e.cfg.SealKey.Public, &lethev1.Subject{Email: email, UserId: userID})
	if err != nil {
		return nil, fmt.Errorf("seal the subject: %w", err)
	}
	return b, nil
}

// subject opens r's identifiers; an older version's, kept in clear, are
// read as they are.
func (e *Engine) subject(r *store.Request) (*lethev1.Subject, error) {
	if r.SealedSubject == nil {
		return &lethev1.Subject{Email: r.ClearEmail, UserId: r.ClearUserID}, nil
	}
	s, err := e.cfg.SealKey.OpenSubject(r.SealedSubject)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", r.ID, err)
	}
	return s, nil
}

// identity is a request's identifiers as its tasks carry them: opened, and
// sealed to a system's connector where that was done ahead.
type identity struct {
	subject *lethev1.Subject
	sealed  map[string][]byte // by system
	// signed are first attempts' tasks signed ahead, by system, outside
	// the store's transaction (presign): attempt uses one if the task it
	// makes is the same.
	signed map[string]*lethev1.Task
}

// sealForSystems seals subject to each system's connector, under one
// ephemeral key (proof.Sealer); a system without a sealing key is left
// out (its attempt says so, or seals again).
func (e *Engine) sealForSystems(subject *lethev1.Subject, now time.Time) map[string][]byte {
	sealed := make(map[string][]byte, len(e.cfg.Systems))
	sealer, err := proof.NewSealer()
	if err != nil {
		return sealed
	}
	keys := e.Keys()
	for _, sys := range e.cfg.Systems {
		to, err := keys.SealKeyFor(sys, now)
		if err != nil {
			continue
		}
		if b, err := sealer.SealSubject(to, subject); err == nil {
			sealed[sys] = b
		}
	}
	return sealed
}

// forget drops r's identifiers: the request has ended.
func forget(r *store.Request) {
	r.SealedSubject, r.ClearEmail, r.ClearUserID = nil, "", ""
}

// updateRequest stores r, sealing first the identifiers an older version
// kept in clear (the store clears those on every update).
func (e *Engine) updateRequest(ctx context.Context, tx store.Tx, r *store.Request) error {
	if r.SealedSubject == nil && (r.ClearEmail != "" || r.ClearUserID != "") {
		sealed, err := e.sealSubject(r.ClearEmail, r.ClearUserID)
		if err != nil {
			return err
		}
		r.SealedSubject = sealed
	}
	r.ClearEmail, r.ClearUserID = "", ""
	return tx.UpdateRequest(ctx, r)
}

// sealNotice seals a notice's payload, which names the person, for the store.
func (e *Engine) sealNotice(m proto.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return proof.Seal(e.cfg.SealKey.Public, b)
}

// OpenNotice opens the payload of a notice in the outbox into m; an older
// version's, stored in clear, is read as it is.
func (e *Engine) OpenNotice(n *store.Notice, m proto.Message) error {
	b, err := e.cfg.SealKey.Open(n.Payload)
	if errors.Is(err, proof.ErrNotSealedToUs) {
		b = n.Payload
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("notice %s: %w", n.ID, err)
	}
	return nil
}

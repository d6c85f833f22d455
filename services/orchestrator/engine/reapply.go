package engine

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// ErrBadReapply is a re-application that names no registered system, or
// a time in the future.
var ErrBadReapply = errors.New("bad re-application")

// reapplyScope is what a re-application keeps in its request's scope:
// the keyed hashes its task carries, and what the log shows of them.
type reapplyScope struct {
	proof.ReapplyScope
	Hashes []string `json:"hashes"`
}

// DefaultReapplyChunk is the most keyed hashes one re-application task
// carries: 8,000 hashes of 66 bytes are about 530 KB, under the 1 MiB a
// NATS message or a Kafka record holds by default, with room for the
// envelope.
const DefaultReapplyChunk = 8000

// StartReapply opens a re-application of erasures in a system restored
// from a backup taken at since: a request of type reapply with one task,
// to that system, carrying the keyed hashes (the subject hashes the store
// keeps) of everyone whose erasure in the tenant ended since then. The
// system hashes its own rows' identifiers with the same key and erases
// the matches. Nobody's identifier in clear is needed, or kept.
//
// More people than a task carries (Config.ReapplyChunk) make several
// requests, parts 1..n of the re-application, each with its receipt and
// certificate; they are returned in order.
func (e *Engine) StartReapply(ctx context.Context, tenant, system string, since time.Time, by *proof.Actor) ([]*store.Request, error) {
	now := e.Now()
	switch {
	case !slices.Contains(e.cfg.Systems, system):
		return nil, fmt.Errorf("%w: %q is not a registered system", ErrBadReapply, system)
	case since.After(now):
		return nil, fmt.Errorf("%w: since is in the future", ErrBadReapply)
	}
	hashes, err := e.erasedSince(ctx, tenant, since)
	if err != nil {
		return nil, err
	}
	parts := slices.Collect(slices.Chunk(hashes, cmp.Or(e.cfg.ReapplyChunk, DefaultReapplyChunk)))
	if len(parts) == 0 {
		parts = [][]string{nil} // no one: a receipt says so all the same
	}
	var started []*store.Request
	for i, part := range parts {
		digest := sha256.Sum256([]byte(strings.Join(part, "\n")))
		scope := reapplyScope{ReapplyScope: proof.ReapplyScope{System: system, Since: since.UTC(), People: len(part),
			HashesSHA256: hex.EncodeToString(digest[:])}, Hashes: part}
		if len(parts) > 1 {
			scope.Part, scope.Parts = i+1, len(parts)
		}
		r, err := e.openUnattended(ctx, unattended{idPrefix: "req_", tenant: tenant, typ: lifecycle.Reapply, source: SourceOnDemand,
			scope: scope, created: proof.Entry{Reapply: &scope.ReapplyScope}, systems: []string{system}, by: by}, now)
		if err != nil {
			return started, fmt.Errorf("reapply: %w", err)
		}
		e.log.Info("re-application started", "request_id", r.ID, "tenant", tenant, "system", system, "people", len(part), "part", i+1, "parts", len(parts))
		started = append(started, r)
	}
	e.cfg.Relay.Wake()
	return started, nil
}

// erasedSince lists the subject hashes of the tenant's erasures that
// ended since t, sorted, each once.
func (e *Engine) erasedSince(ctx context.Context, tenant string, t time.Time) ([]string, error) {
	var hashes []string
	q := store.ListQuery{Tenant: tenant, Type: lifecycle.Erasure, States: []lifecycle.State{lifecycle.Fulfilled, lifecycle.PartiallyRetained}, Limit: 500}
	for {
		page, next, err := e.cfg.Store.List(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			if r.SubjectHash != "" && !r.CompletedAt.Before(t) {
				hashes = append(hashes, r.SubjectHash)
			}
		}
		if next == "" {
			break
		}
		q.After = next
	}
	slices.Sort(hashes)
	return slices.Compact(hashes), nil
}

// ReapplyOf reads what a re-application covers; nil for another request.
func ReapplyOf(r *store.Request) (*proof.ReapplyScope, error) {
	s, err := reapplyOf(r)
	if s == nil || err != nil {
		return nil, err
	}
	return &s.ReapplyScope, nil
}

func reapplyOf(r *store.Request) (*reapplyScope, error) {
	if r.Type != lifecycle.Reapply {
		return nil, nil
	}
	var s reapplyScope
	if err := json.Unmarshal([]byte(r.Scope), &s); err != nil {
		return nil, fmt.Errorf("request %s: re-application: %w", r.ID, err)
	}
	return &s, nil
}

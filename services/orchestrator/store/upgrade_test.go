package store_test

import (
	"database/sql"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
	"github.com/lethe-dev/lethe/services/orchestrator/store/storetest"
)

// TestUpgradeToRequestCounts: a database made by the release before
// extensions, deferrals and notices (SQLite at schema version 2,
// PostgreSQL at 1) is brought up to date: the request counts are seeded
// from the requests it holds, its requests and tasks read back with the
// new fields zero, the counts follow the changes made after the upgrade,
// and opening it again seeds nothing twice.
func TestUpgradeToRequestCounts(t *testing.T) {
	t0 := time.Date(2025, 11, 3, 9, 0, 0, 0, time.UTC)
	request := func(id string, typ lifecycle.Type, state lifecycle.State) *store.Request {
		r := &store.Request{ID: id, Tenant: "demo", Type: typ, State: state, ClearEmail: "person-0001@example.com", ClearUserID: "user-0001",
			SubjectHash: "hash-" + id, Source: "api", ReceivedAt: t0, Deadline: t0.AddDate(0, 1, 0), CreatedAt: t0, UpdatedAt: t0.Add(time.Hour)}
		if state != lifecycle.PendingVerification && state != lifecycle.Open {
			r.ClearEmail, r.ClearUserID, r.CompletedAt = "", "", t0.Add(2*time.Hour)
		}
		return r
	}
	reqs := []*store.Request{
		request("old-1", lifecycle.Erasure, lifecycle.PendingVerification),
		request("old-2", lifecycle.Erasure, lifecycle.Open),
		request("old-3", lifecycle.Erasure, lifecycle.Fulfilled),
		request("old-4", lifecycle.Export, lifecycle.Fulfilled),
		request("old-5", lifecycle.Erasure, lifecycle.Fulfilled),
		request("old-6", lifecycle.Erasure, lifecycle.Failed),
	}
	reqs[1].Source, reqs[1].SourceRef = "account_deleted", "account_deleted:ev-2"
	tasks := []*store.Task{
		{ID: "old-2:accounts", RequestID: "old-2", System: "accounts", State: lifecycle.TaskPublished, Attempts: 2, NextAttemptAt: t0.Add(3 * time.Hour),
			Counts: map[string]int64{}},
		{ID: "old-3:billing", RequestID: "old-3", System: "billing", State: lifecycle.TaskAnswered, Attempts: 1, Outcome: lifecycle.Retained,
			AnsweredAt: t0.Add(2 * time.Hour), LegalBasis: "tax law", RetainUntil: t0.AddDate(10, 0, 0), Counts: map[string]int64{"invoices": 12}, Remaining: 12},
	}
	seedCounts := map[store.Kind]int{
		{State: lifecycle.PendingVerification, Type: lifecycle.Erasure}: 1, {State: lifecycle.Open, Type: lifecycle.Erasure}: 1, {State: lifecycle.Fulfilled, Type: lifecycle.Erasure}: 2,
		{State: lifecycle.Fulfilled, Type: lifecycle.Export}: 1, {State: lifecycle.Failed, Type: lifecycle.Erasure}: 1,
	}

	engines := []struct {
		name    string
		dialect goose.Dialect
		version int64 // the schema version of the release before
		// open returns the database and a function that opens it as a
		// store (again and again).
		open func(t *testing.T) (*sql.DB, func() store.Store)
	}{
		{"sqlite", goose.DialectSQLite3, 2, func(t *testing.T) (*sql.DB, func() store.Store) {
			path := filepath.Join(t.TempDir(), "lethe.db")
			db, err := sqlitedb.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			return db, func() store.Store { return openSQLite(t, path) }
		}},
		{"postgres", goose.DialectPostgres, 1, func(t *testing.T) (*sql.DB, func() store.Store) {
			dsn := storetest.PostgresDSN(t)
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				t.Fatal(err)
			}
			return db, func() store.Store { return openPostgres(t, dsn) }
		}},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			ctx := t.Context()
			db, open := e.open(t)
			p, err := goose.NewProvider(e.dialect, db, os.DirFS(filepath.Join("migrations", e.name)), goose.WithDisableGlobalRegistry(true))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.UpTo(ctx, e.version); err != nil {
				t.Fatal(err)
			}
			for _, q := range oldRows(reqs, tasks) {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			db.Close() // not p.Close, which would too

			s := open()
			st, err := s.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(st.Requests, seedCounts) {
				t.Errorf("counts after the upgrade: %v, want %v", st.Requests, seedCounts)
			}
			for _, want := range reqs {
				got, gotTasks, err := s.Get(ctx, want.ID)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("request %s after the upgrade:\n got %+v\nwant %+v", want.ID, got, want)
				}
				for _, k := range gotTasks {
					if k.RoundStart != 0 {
						t.Errorf("task %s: round start %d after the upgrade", k.ID, k.RoundStart)
					}
				}
			}
			_, gotTasks, err := s.Get(ctx, "old-3")
			if err != nil || len(gotTasks) != 1 || gotTasks[0].RetainUntil != tasks[1].RetainUntil || gotTasks[0].Counts["invoices"] != 12 {
				t.Errorf("task of old-3 after the upgrade: %+v, %v", gotTasks, err)
			}

			// The old requests are counted as they change.
			if err := s.Tx(ctx, func(tx store.Tx) error {
				r, err := tx.Request(ctx, "old-2")
				if err != nil {
					return err
				}
				r.State, r.ClearEmail, r.ClearUserID, r.CompletedAt, r.AnsweredAt = lifecycle.Fulfilled, "", "", t0.Add(4*time.Hour), t0.Add(4*time.Hour)
				if err := tx.UpdateRequest(ctx, r); err != nil {
					return err
				}
				return tx.InsertNotice(ctx, &store.Notice{ID: "notice-1", RequestID: "old-1", Kind: "extension", Payload: []byte("p"), CreatedAt: t0, NextAttemptAt: t0})
			}); err != nil {
				t.Fatal(err)
			}
			want := map[store.Kind]int{
				{State: lifecycle.PendingVerification, Type: lifecycle.Erasure}: 1, {State: lifecycle.Fulfilled, Type: lifecycle.Erasure}: 3,
				{State: lifecycle.Fulfilled, Type: lifecycle.Export}: 1, {State: lifecycle.Failed, Type: lifecycle.Erasure}: 1,
			}
			s.Close()
			for i := range 2 {
				s := open() // migrated already: nothing is seeded again
				st, err := s.Stats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(st.Requests, want) {
					t.Errorf("counts at opening %d after the upgrade: %v, want %v", i+1, st.Requests, want)
				}
				pr, err := s.Pressure(ctx, nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				if pr.UndeliveredBus != 1 || pr.Open != 1 {
					t.Errorf("pressure after the upgrade: %+v", pr)
				}
				s.Close()
			}
		})
	}
}

// oldRows returns the INSERT statements that write requests and tasks as
// the release before did (without the columns added since), with literal
// values that both engines read alike.
func oldRows(reqs []*store.Request, tasks []*store.Task) []string {
	str := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	null := func(s string) string {
		if s == "" {
			return "NULL"
		}
		return str(s)
	}
	ms := func(t time.Time) string {
		if t.IsZero() {
			return "NULL"
		}
		return fmt.Sprint(t.UnixMilli())
	}
	var out []string
	for _, r := range reqs {
		out = append(out, `INSERT INTO requests (id, tenant, type, state, subject_email, subject_user_id, subject_hash, source, source_ref,
			received_at, deadline, created_at, updated_at, completed_at) VALUES (`+strings.Join([]string{
			str(r.ID), str(r.Tenant), str(string(r.Type)), str(string(r.State)), null(r.ClearEmail), null(r.ClearUserID), str(r.SubjectHash), str(r.Source),
			null(r.SourceRef), ms(r.ReceivedAt), ms(r.Deadline), ms(r.CreatedAt), ms(r.UpdatedAt), ms(r.CompletedAt)}, ", ")+`)`)
	}
	for _, k := range tasks {
		counts := "{}"
		for c, n := range k.Counts {
			counts = fmt.Sprintf(`{"%s": %d}`, c, n) // one category at most here
		}
		out = append(out, `INSERT INTO tasks (id, request_id, system, state, attempts, next_attempt_at, outcome, answered_at, detail, legal_basis,
			retain_until, counts, remaining) VALUES (`+strings.Join([]string{
			str(k.ID), str(k.RequestID), str(k.System), str(string(k.State)), fmt.Sprint(k.Attempts), ms(k.NextAttemptAt), str(string(k.Outcome)), ms(k.AnsweredAt),
			str(k.Detail), str(k.LegalBasis), ms(k.RetainUntil), str(counts), fmt.Sprint(k.Remaining)}, ", ")+`)`)
	}
	return out
}

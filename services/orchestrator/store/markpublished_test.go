package store_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
	"github.com/lethe-dev/lethe/services/orchestrator/store/storetest"
)

var burstStart = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// insertTasks inserts n requests of one task each, published; timed says
// whether their wait runs already (a time to be retried at) or they wait
// for the relay to mark them.
func insertTasks(t *testing.T, s store.Store, prefix string, n int, timed bool) []*store.Task {
	t.Helper()
	var tasks []*store.Task
	err := s.Tx(t.Context(), func(tx store.Tx) error {
		for i := range n {
			id := fmt.Sprintf("%s-%04d", prefix, i)
			r := &store.Request{ID: id, Tenant: "demo", Type: lifecycle.Erasure, State: lifecycle.Open,
				SealedSubject: []byte("sealed"), SubjectHash: "hash-" + id, Source: "api",
				ReceivedAt: burstStart, Deadline: burstStart.AddDate(0, 1, 0), CreatedAt: burstStart, UpdatedAt: burstStart}
			if err := tx.InsertRequest(t.Context(), r); err != nil {
				return err
			}
			k := &store.Task{ID: id + ":accounts", RequestID: id, System: "accounts", State: lifecycle.TaskPublished, Attempts: 1}
			if timed {
				k.NextAttemptAt = burstStart.Add(time.Minute)
			}
			if err := tx.InsertTask(t.Context(), k); err != nil {
				return err
			}
			tasks = append(tasks, k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tasks
}

// The relay finds each task it marks by its key, whatever the engine's
// statistics say: analysed while every published task had a time, they say
// none waits unmarked, and in the burst that follows thousands do. With
// tasks_due holding the unmarked tasks, PostgreSQL took that index for each
// task marked, reading the whole burst each time.
func TestMarkPublishedFindsTasksByKey(t *testing.T) {
	engines := []struct {
		name    string
		open    func(t *testing.T) store.Store
		analyze string
		explain string
		byKey   func(plan string) bool
	}{
		{"sqlite", func(t *testing.T) store.Store { return openSQLite(t, filepath.Join(t.TempDir(), "lethe.db")) },
			`ANALYZE`, `EXPLAIN QUERY PLAN `,
			func(plan string) bool { return strings.Contains(plan, "(id=?)") }},
		{"postgres", func(t *testing.T) store.Store {
			if os.Getenv(storetest.EnvPostgres) == "" {
				t.Skipf("PostgreSQL tests skipped: %s is not set", storetest.EnvPostgres)
			}
			return openPostgres(t, storetest.PostgresDSN(t))
		}, `ANALYZE tasks`, `EXPLAIN `,
			func(plan string) bool {
				return strings.Contains(plan, "tasks_pkey") && !strings.Contains(plan, "tasks_due")
			}},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			s := e.open(t)
			insertTasks(t, s, "timed", 300, true)
			db, q := store.BenchDB(s)
			if _, err := db.ExecContext(t.Context(), e.analyze); err != nil {
				t.Fatal(err)
			}
			burst := insertTasks(t, s, "burst", 2000, false)
			rows, err := db.QueryContext(t.Context(), e.explain+q(store.MarkTaskPublished),
				burstStart.UnixMilli(), int64(7), burstStart.Add(time.Minute).UnixMilli(), burst[1000].ID)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan strings.Builder
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]any, len(cols))
				for i := range vals {
					vals[i] = new(sql.RawBytes)
				}
				if err := rows.Scan(vals...); err != nil {
					t.Fatal(err)
				}
				for _, v := range vals {
					plan.Write(*v.(*sql.RawBytes))
					plan.WriteByte(' ')
				}
				plan.WriteByte('\n')
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if !e.byKey(plan.String()) {
				t.Errorf("a task is not marked by its key:\n%s", plan.String())
			}
		})
	}
}

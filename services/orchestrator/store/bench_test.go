package store_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
	"github.com/lethe-dev/lethe/services/orchestrator/store/storetest"
)

// The benchmark fills each engine twice, with 10,000 and with 1,000,000
// requests ($LETHE_BENCH_REQUESTS), and times the queries the orchestrator
// runs often on both. Either fill holds the same 1,000 requests not yet
// ended (20 of them overdue) and differs only in the number of ended ones,
// as a store does after years of use: with the right indexes the queries
// take as long on either. Run it with
//
//	go test -run xxx -bench Store -benchtime 200x ./store/
//
// (PostgreSQL too when LETHE_TEST_POSTGRES_DSN is set; about 12 minutes on
// two cores, most of it filling). The fills are made once per run, outside
// the timings; `go test` without -bench never makes them.
const (
	benchSmall   = 10_000
	benchOpen    = 1_000 // requests not ended, in every fill
	benchOverdue = 20    // of which overdue
	benchSample  = 1_000 // request ids Get picks from, spread over the table
)

var (
	benchNow     = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	benchSystems = []string{"accounts", "billing", "emailanalytics", "recordings", "subprocessors"}
)

type fixture struct {
	s       store.Store
	n       int
	ids     []string
	perByte float64 // bytes per request
}

var (
	fixtureMu sync.Mutex
	fixtures  = map[string]*fixture{}
	cleanups  []func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	os.Exit(code)
}

type benchEngine struct {
	name string
	open func(ctx context.Context) (store.Store, func(), error)
}

var benchEngines = []benchEngine{
	{"sqlite", func(ctx context.Context) (store.Store, func(), error) {
		dir, err := os.MkdirTemp("", "lethe-bench-")
		if err != nil {
			return nil, nil, err
		}
		s, err := store.OpenSQLite(filepath.Join(dir, "lethe.db"))
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return s, func() { s.Close(); os.RemoveAll(dir) }, nil
	}},
	{"postgres", func(ctx context.Context) (store.Store, func(), error) {
		dsn := os.Getenv(storetest.EnvPostgres)
		if dsn == "" {
			return nil, nil, nil
		}
		schemaDSN, drop, err := storetest.NewSchema(ctx, dsn)
		if err != nil {
			return nil, nil, err
		}
		s, err := store.OpenPostgres(ctx, schemaDSN)
		if err != nil {
			drop(ctx)
			return nil, nil, err
		}
		return s, func() { s.Close(); drop(context.Background()) }, nil
	}},
}

// benchFixture returns the engine filled with n requests, filling it on
// first use.
func benchFixture(b *testing.B, e benchEngine, n int) *fixture {
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	key := e.name + "/" + strconv.Itoa(n)
	if f, ok := fixtures[key]; ok {
		return f
	}
	ctx := context.Background()
	s, cleanup, err := e.open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if s == nil {
		b.Skipf("PostgreSQL skipped: %s is not set", storetest.EnvPostgres)
	}
	cleanups = append(cleanups, cleanup)
	start := time.Now()
	ids, err := fill(ctx, s, e.name, n)
	if err != nil {
		b.Fatal(err)
	}
	size, err := store.BenchSize(ctx, s)
	if err != nil {
		b.Fatal(err)
	}
	f := &fixture{s: s, n: n, ids: ids, perByte: float64(size) / float64(n)}
	fmt.Fprintf(os.Stderr, "fill %s: %d requests in %s, %.0f MB, %.0f bytes per request\n",
		e.name, n, time.Since(start).Round(time.Second), float64(size)/1e6, f.perByte)
	fixtures[key] = f
	return f
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// benchRow makes request i of n and its tasks, the way the orchestrator
// leaves them: ended requests without their subject, with answered tasks
// and signed receipts; open ones waiting for answers.
func benchRow(i, n int, pad []byte) ([]any, [][]any) {
	ended := i < n-benchOpen
	j := i - (n - benchOpen)
	var received time.Time
	var deadline time.Time
	switch {
	case ended: // received over two years, up to 40 days ago
		received = benchNow.Add(-730 * 24 * time.Hour).Add(time.Duration(int64(i) * int64(690*24*time.Hour) / int64(n-benchOpen)))
		deadline = received.AddDate(0, 1, 0)
	case j < benchOverdue:
		deadline = benchNow.Add(-time.Duration(j+1) * time.Hour)
		received = deadline.AddDate(0, -1, 0)
	default:
		deadline = benchNow.Add(time.Duration(int64(j) * int64(29*24*time.Hour) / benchOpen))
		received = deadline.AddDate(0, -1, 0)
	}
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(received.UnixMilli())<<16)
	h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i)))
	copy(raw[6:], h[:10])
	id := "req_" + idEncoding.EncodeToString(raw[:])
	typ := "erasure"
	if i%7 == 0 {
		typ = "export"
	}
	state, email, userID := lifecycle.Open, any(fmt.Sprintf("person-%04d@example.com", i%10000)), any(fmt.Sprintf("user-%04d", i%10000))
	var completed any
	updated := received
	switch {
	case ended && i%33 == 0:
		state = lifecycle.Failed
	case ended && i%9 == 0:
		state = lifecycle.PartiallyRetained
	case ended:
		state = lifecycle.Fulfilled
	case j%10 == 0:
		state = lifecycle.PendingVerification
	}
	if ended {
		email, userID = nil, nil
		updated = received.Add(72 * time.Hour)
		completed = updated.UnixMilli()
	}
	source, ref := "api", any(nil)
	if i%2 == 0 {
		source, ref = "account_deleted", "account_deleted:"+hex.EncodeToString(h[10:26])
	}
	req := []any{id, "demo", typ, state, email, userID, hex.EncodeToString(h[:]), source, ref,
		received.UnixMilli(), deadline.UnixMilli(), received.UnixMilli(), updated.UnixMilli(), completed}

	var tasks [][]any
	for k, sys := range benchSystems {
		row := []any{id + "." + sys, id, sys, lifecycle.TaskPending, 0, nil, "", nil, "", "", nil, "{}", 0, nil, nil, nil}
		switch {
		case ended && state == lifecycle.Failed && k == 0:
			row[3], row[4], row[8] = lifecycle.TaskDeadLetter, 5, "no answer after 5 attempts"
		case ended:
			outcome := "erased"
			if typ == "export" {
				outcome = "exported"
				row[13], row[14] = h[:], pad[:512]
			}
			if state == lifecycle.PartiallyRetained && k == 1 {
				outcome = "retained"
				row[9], row[10] = "tax law", received.AddDate(10, 0, 0).UnixMilli()
			}
			row[3], row[4], row[6], row[7] = lifecycle.TaskAnswered, 1, outcome, updated.UnixMilli()
			if outcome == "retained" {
				row[3], row[5] = lifecycle.TaskDeferred, row[10] // the follow-up erasure waits for its date
			}
			row[11] = `{"profile":1,"login_history":` + strconv.Itoa(i%50) + `}`
			row[15] = pad[k : k+300] // a signed receipt's size
		case state == lifecycle.Open: // a seventh of them due
			row[3], row[4] = lifecycle.TaskPublished, 1
			row[5] = benchNow.Add(-10 * time.Minute).Add(time.Duration((j*5+k)%70) * time.Minute).UnixMilli()
		}
		tasks = append(tasks, row)
	}
	return req, tasks
}

// fill inserts n requests with their tasks, 1,000 requests a transaction,
// with multi-row INSERTs, and returns ids spread over the table.
func fill(ctx context.Context, s store.Store, name string, n int) ([]string, error) {
	db, q := store.BenchDB(s)
	pad := make([]byte, 1024)
	for i := range pad {
		pad[i] = byte(i * 131)
	}
	var ids []string
	const batch = 1000
	for from := 0; from < n; from += batch {
		to := min(from+batch, n)
		var reqs, tasks [][]any
		for i := from; i < to; i++ {
			r, ts := benchRow(i, n, pad)
			reqs, tasks = append(reqs, r), append(tasks, ts...)
			if i%(n/benchSample) == 0 {
				ids = append(ids, r[0].(string))
			}
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		err = insertRows(ctx, tx, q, `INSERT INTO requests (id, tenant, type, state, subject_email, subject_user_id, subject_hash, source, source_ref,
			received_at, deadline, created_at, updated_at, completed_at)`, reqs)
		for k := 0; err == nil && k < len(tasks); k += batch {
			err = insertRows(ctx, tx, q, `INSERT INTO tasks (id, request_id, system, state, attempts, next_attempt_at, outcome, answered_at,
				detail, legal_basis, retain_until, counts, remaining, export_sha256, export_data, receipt)`, tasks[k:min(k+batch, len(tasks))])
		}
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			tx.Rollback()
			return nil, fmt.Errorf("fill: %w", err)
		}
		if to%100_000 == 0 {
			fmt.Fprintf(os.Stderr, "fill %s: %d/%d requests\n", name, to, n)
		}
	}
	// What a database that has been running a while has: planner
	// statistics (PostgreSQL's autovacuum), a checkpointed WAL (SQLite).
	// And request_counts on one page: the fill's 1,000-request
	// transactions leave thousands of row versions there, which the small
	// transactions of a running orchestrator do not (measured: 40,000 of
	// them kept it at one 8 KB page, HOT-pruned in place).
	maintenance := []string{`VACUUM ANALYZE requests, tasks`, `VACUUM FULL request_counts`}
	if _, ok := s.(*store.SQLite); ok {
		maintenance = []string{`PRAGMA wal_checkpoint(TRUNCATE)`}
	}
	for _, stmt := range maintenance {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func insertRows(ctx context.Context, tx *sql.Tx, q func(string) string, head string, rows [][]any) error {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(rows[0])), ", ") + ")"
	args := make([]any, 0, len(rows)*len(rows[0]))
	for _, r := range rows {
		args = append(args, r...)
	}
	_, err := tx.ExecContext(ctx, q(head+" VALUES "+strings.TrimSuffix(strings.Repeat(row+", ", len(rows)), ", ")), args...)
	return err
}

var errRollback = errors.New("rollback")

// benchQueries are the store's hot paths, each checking its answer.
var benchQueries = []struct {
	name string
	run  func(ctx context.Context, f *fixture, i int) error
}{
	{"list_open_by_deadline", func(ctx context.Context, f *fixture, i int) error {
		reqs, next, err := f.s.List(ctx, store.ListQuery{State: lifecycle.Open, Limit: 50})
		if err == nil && (len(reqs) != 50 || next == "" || !reqs[0].Deadline.Before(benchNow)) {
			err = fmt.Errorf("list: %d requests, not the overdue first", len(reqs))
		}
		return err
	}},
	{"count_overdue", func(ctx context.Context, f *fixture, i int) error {
		n, err := f.s.CountOverdue(ctx, benchNow)
		if err == nil && n != benchOverdue {
			err = fmt.Errorf("%d overdue, want %d", n, benchOverdue)
		}
		return err
	}},
	{"get_by_id", func(ctx context.Context, f *fixture, i int) error {
		_, tasks, err := f.s.Get(ctx, f.ids[i%len(f.ids)])
		if err == nil && len(tasks) != len(benchSystems) {
			err = fmt.Errorf("%d tasks", len(tasks))
		}
		return err
	}},
	{"due_tasks", func(ctx context.Context, f *fixture, i int) error {
		err := f.s.Tx(ctx, func(tx store.Tx) error {
			due, err := tx.DueTasks(ctx, benchNow, 100)
			if err == nil && len(due) != 100 {
				err = fmt.Errorf("%d due tasks", len(due))
			}
			if err != nil {
				return err
			}
			return errRollback // leaves them due, and unlocked
		})
		if errors.Is(err, errRollback) {
			err = nil
		}
		return err
	}},
	// Stats is read at each metrics scrape: the counts by state and type
	// are kept by triggers (it was a count of every request, 3.6 s per
	// scrape on SQLite at 1M, before migration 00003).
	{"stats", func(ctx context.Context, f *fixture, i int) error {
		st, err := f.s.Stats(ctx)
		if err == nil && st.Requests[store.Kind{State: lifecycle.Open, Type: lifecycle.Erasure}] == 0 {
			err = errors.New("no open requests counted")
		}
		return err
	}},
	// Pressure is the rest of a scrape: deadlines by bucket, pending tasks
	// per system, deferred erasures, undelivered notices.
	{"pressure", func(ctx context.Context, f *fixture, i int) error {
		now := time.Now()
		p, err := f.s.Pressure(ctx, []time.Time{now, now.Add(72 * time.Hour), now.Add(7 * 24 * time.Hour), now.Add(14 * 24 * time.Hour)},
			[]time.Time{now, now.Add(30 * 24 * time.Hour)})
		if err == nil && p.Open != benchOpen {
			err = fmt.Errorf("%d requests not ended, want %d", p.Open, benchOpen)
		}
		return err
	}},
}

func BenchmarkStore(b *testing.B) {
	large := benchSmall * 100
	if v := os.Getenv("LETHE_BENCH_REQUESTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < benchSmall {
			b.Fatalf("LETHE_BENCH_REQUESTS=%q: want a number of at least %d", v, benchSmall)
		}
		large = n
	}
	ctx := context.Background()
	for _, e := range benchEngines {
		b.Run(e.name, func(b *testing.B) {
			small, big := benchFixture(b, e, benchSmall), benchFixture(b, e, large)
			label := strconv.Itoa(large/1000) + "k"
			for _, bq := range benchQueries {
				b.Run(bq.name, func(b *testing.B) {
					// Both warm, then the same query on the small fill, as
					// many times, outside the timer; then on the large one,
					// timed.
					for i := range 10 {
						if err := errors.Join(bq.run(ctx, small, i), bq.run(ctx, big, i)); err != nil {
							b.Fatal(err)
						}
					}
					start := time.Now()
					for i := range b.N {
						if err := bq.run(ctx, small, i); err != nil {
							b.Fatal(err)
						}
					}
					smallNs := float64(time.Since(start).Nanoseconds()) / float64(b.N)
					b.ResetTimer()
					for i := range b.N {
						if err := bq.run(ctx, big, i); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					largeNs := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					b.ReportMetric(smallNs, "ns/op@10k")
					b.ReportMetric(largeNs/smallNs, label+"/10k")
				})
			}
			b.Run("size", func(b *testing.B) {
				b.ReportMetric(big.perByte, "B/request")
				b.ReportMetric(small.perByte, "B/request@10k")
			})
		})
	}
}

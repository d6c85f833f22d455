// The proof a request leaves: the log (entries, tree hashes, inclusion
// proofs, concurrent appends, its lock order against state changes) and
// certificates.

package storetest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// memLog is a tlog hash storage in memory, to check the store's against.
type memLog []tlog.Hash

func (m memLog) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = m[x]
	}
	return out, nil
}

// checkTree compares the store's tree with one built in memory from the
// entries in index order, and checks an inclusion proof of each.
func checkTree(t *testing.T, s store.Store, entries [][]byte) {
	t.Helper()
	var mem memLog
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), e, mem)
		if err != nil {
			t.Fatal(err)
		}
		mem = append(mem, hs...)
	}
	n := int64(len(entries))
	want, err := tlog.TreeHash(n, mem)
	if err != nil {
		t.Fatal(err)
	}
	mustTx(t, s, func(tx store.Tx) error {
		size, err := tx.LogSize(t.Context())
		if err != nil {
			return err
		}
		same(t, "log size", size, n)
		got, err := tlog.TreeHash(size, store.HashReader(t.Context(), tx))
		if err != nil {
			return err
		}
		if got != want {
			t.Errorf("tree hash %v, computed from the entries %v", got, want)
		}
		for i, e := range entries {
			p, err := tlog.ProveRecord(n, int64(i), store.HashReader(t.Context(), tx))
			if err != nil {
				return err
			}
			if err := tlog.CheckRecord(p, n, want, int64(i), tlog.RecordHash(e)); err != nil {
				t.Errorf("inclusion proof of entry %d: %v", i, err)
			}
		}
		return nil
	})
}

func testLog(t *testing.T, s store.Store) {
	var entries [][]byte
	mustTx(t, s, func(tx store.Tx) error {
		for i, req := range []string{"req-1", "req-2", "req-1"} {
			e := fmt.Appendf(nil, "entry %d of %s", i, req)
			if err := tx.AppendLog(t.Context(), req, e); err != nil {
				return err
			}
			entries = append(entries, e)
			n, err := tx.LogSize(t.Context()) // places the entry: the next index
			same(t, "log size in the appending Tx", n, int64(i+1))
			if err != nil {
				return err
			}
		}
		recs, err := tx.RequestLog(t.Context(), "req-1")
		same(t, "RequestLog in the appending Tx", recs, []store.LogRecord{{Index: 0, Data: entries[0]}, {Index: 2, Data: entries[2]}})
		return err
	})
	checkTree(t, s, entries)
	// More entries in one transaction than one statement writes: the
	// store writes them (and their hashes) in several.
	mustTx(t, s, func(tx store.Tx) error {
		for i := range 700 {
			e := fmt.Appendf(nil, "bulk entry %d", i)
			if err := tx.AppendLog(t.Context(), "req-3", e); err != nil {
				return err
			}
			entries = append(entries, e)
		}
		recs, err := tx.RequestLog(t.Context(), "req-3")
		same(t, "entries of one transaction read in it", len(recs), 700)
		return err
	})
	checkTree(t, s, entries)
	mustTx(t, s, func(tx store.Tx) error {
		recs, err := tx.RequestLog(t.Context(), "req-2")
		same(t, "RequestLog", recs, []store.LogRecord{{Index: 1, Data: entries[1]}})
		if err != nil {
			return err
		}
		recs, err = tx.RequestLog(t.Context(), "req-unknown")
		same(t, "RequestLog of a request without entries", len(recs), 0)
		return err
	})
}

// testLogConcurrentAppends: transactions appending at once get dense
// indexes, and the tree over the stored hashes is the one the entries make.
func testLogConcurrentAppends(t *testing.T, s store.Store) {
	const workers, txs, perTx = 4, 8, 2
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			<-start
			req := fmt.Sprintf("req-%d", w)
			for i := range txs {
				err := s.Tx(context.Background(), func(tx store.Tx) error {
					for j := range perTx {
						e := fmt.Sprintf("%s tx %d entry %d", req, i, j)
						if err := tx.AppendLog(t.Context(), req, []byte(e)); err != nil {
							return err
						}
						// Half the transactions read the log between
						// their appends: the first is placed then, the
						// second at the commit.
						if i%2 == 1 && j == 0 {
							if _, err := tx.RequestLog(t.Context(), req); err != nil {
								return err
							}
						}
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	indexes := logByIndex(t, s)
	n := workers * txs * perTx
	same(t, "entries", len(indexes), n)
	entries := make([][]byte, n)
	seen := map[string]bool{}
	for idx, e := range indexes {
		if seen[string(e)] {
			t.Errorf("entry %q twice in the log", e)
		}
		seen[string(e)] = true
		entries[idx] = e
	}
	mustTx(t, s, func(tx store.Tx) error {
		for w := range workers {
			req := fmt.Sprintf("req-%d", w)
			recs, err := tx.RequestLog(t.Context(), req)
			if err != nil {
				return err
			}
			same(t, "entries of "+req, len(recs), txs*perTx)
			for i, rec := range recs {
				if i > 0 && rec.Index <= recs[i-1].Index {
					t.Errorf("RequestLog(%s) out of order", req)
				}
				if !bytes.Equal(rec.Data, entries[rec.Index]) {
					t.Errorf("entry %d: %q, appended %q", rec.Index, rec.Data, entries[rec.Index])
				}
			}
		}
		return nil
	})
	checkTree(t, s, entries)
}

// testStateChangeAroundLog: transactions that lock in the documented
// order (request, tasks, log) queue rather than deadlock, whether they
// change a request's state before appending to the log (as Verify does)
// or after (as a receipt that completes its request does).
func testStateChangeAroundLog(t *testing.T, s store.Store) {
	a, b := newRequest("req-a", lifecycle.PendingVerification, t0.AddDate(0, 1, 0)), newRequest("req-b", lifecycle.Open, t0.AddDate(0, 1, 0))
	insert(t, s, []*store.Request{a, b})
	aChanged, bAppended := make(chan struct{}), make(chan struct{})
	// meet lets the other transaction reach its point before going on; on
	// an engine that runs one transaction at a time it cannot, and the
	// wait ends.
	meet := func(done, other chan struct{}) {
		select {
		case <-done:
		default:
			close(done)
		}
		select {
		case <-other:
		case <-time.After(300 * time.Millisecond):
		}
	}
	var wg sync.WaitGroup
	var errA, errB error
	wg.Go(func() {
		errA = s.Tx(context.Background(), func(tx store.Tx) error {
			if err := setState(t.Context(), tx, lifecycle.Open, a.ID); err != nil {
				return err
			}
			meet(aChanged, bAppended)
			return tx.AppendLog(t.Context(), a.ID, []byte("verified a"))
		})
	})
	wg.Go(func() {
		errB = s.Tx(context.Background(), func(tx store.Tx) error {
			if _, err := tx.Request(t.Context(), b.ID); err != nil {
				return err
			}
			if err := tx.AppendLog(t.Context(), b.ID, []byte("receipt b")); err != nil {
				return err
			}
			// Read, as a request that ends reads the log's size to hold
			// its certificate: the entry is placed, the log's head locked.
			if _, err := tx.LogSize(t.Context()); err != nil {
				return err
			}
			meet(bAppended, aChanged)
			return setState(t.Context(), tx, lifecycle.Fulfilled, b.ID)
		})
	})
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("state change then log: %v; log then state change: %v", errA, errB)
	}
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	same(t, "counts", st.Requests, map[store.Kind]int{{State: lifecycle.Open, Type: lifecycle.Erasure}: 1, {State: lifecycle.Fulfilled, Type: lifecycle.Erasure}: 1})
}

func testCertificates(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.Certificate(ctx, "req-1")
	wantErr(t, "certificate of an unknown request", err, store.ErrNotFound)
	insert(t, s, []*store.Request{newRequest("req-1", lifecycle.Fulfilled, t0), newRequest("req-2", lifecycle.Open, t0)})
	_, err = s.Certificate(ctx, "req-2")
	wantErr(t, "certificate of a request without one", err, store.ErrNotFound)
	// The last is as long as a real one, and as repetitive: stores may
	// keep it compressed, and must give it back byte for byte.
	proofs := `{"proofs":[` + strings.Repeat(`"q0xvbmcgaGFzaCBvZiBhIHRyZWUgbm9kZSBoZXJlIQ==",`, 300) + `"end"]}`
	for _, cert := range [][]byte{[]byte(`{"first":true}`), []byte(`{"second":true}`), []byte(proofs)} {
		mustTx(t, s, func(tx store.Tx) error { return tx.PutCertificate(ctx, "req-1", store.PackCertificate(cert), t0) })
		got, err := s.Certificate(ctx, "req-1")
		if err != nil {
			t.Fatal(err)
		}
		same(t, "certificate", string(got), string(cert))
	}
}

// testLogFailuresAmongConcurrentTxs: transactions that append to the log
// and then fail, run at the same time as transactions that append and
// commit (on SQLite they share group commits), leave nothing behind; a
// function that panics does so in its caller alone. The log is exactly
// the committed entries, and its tree (hashes read back, through the
// store's cache or not) matches one computed from them.
func testLogFailuresAmongConcurrentTxs(t *testing.T, s store.Store) {
	const workers, txs = 6, 10
	errBoom := fmt.Errorf("boom")
	var mu sync.Mutex
	committed := map[string]bool{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range txs {
				e := fmt.Sprintf("worker %d tx %d", w, i)
				fail, panics := (w+i)%3 == 0, w == 0 && i == 5
				call := func() error {
					return s.Tx(context.Background(), func(tx store.Tx) error {
						if err := tx.AppendLog(t.Context(), fmt.Sprintf("req-%d", w), []byte(e)); err != nil {
							return err
						}
						if panics {
							panic(errBoom)
						}
						if fail {
							// A read of the log first writes what was
							// appended, this function's and (SQLite's
							// group commit) earlier members': a
							// rollback to its savepoint must keep theirs.
							if _, err := tx.RequestLog(t.Context(), fmt.Sprintf("req-%d", w)); err != nil {
								return err
							}
							return errBoom
						}
						return nil
					})
				}
				var err error
				func() {
					defer func() {
						if p := recover(); p != nil {
							if !panics {
								t.Errorf("%s: panic %v in a caller whose function did not panic", e, p)
							}
							err = errBoom
						}
					}()
					err = call()
				}()
				switch {
				case fail || panics:
					if err != errBoom {
						t.Errorf("%s: err %v, want the function's own", e, err)
					}
				case err != nil:
					t.Errorf("%s: %v", e, err)
				default:
					mu.Lock()
					committed[e] = true
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	entries := logByIndex(t, s)
	same(t, "entries in the log", len(entries), len(committed))
	for _, e := range entries {
		if !committed[string(e)] {
			t.Errorf("entry %q in the log: its transaction failed", e)
		}
		delete(committed, string(e)) // a second copy is an error too
	}
	mustTx(t, s, func(tx store.Tx) error {
		for w := range workers {
			recs, err := tx.RequestLog(t.Context(), fmt.Sprintf("req-%d", w))
			if err != nil {
				return err
			}
			for _, rec := range recs {
				if !bytes.Equal(rec.Data, entries[rec.Index]) {
					t.Errorf("entry %d: %q, committed %q", rec.Index, rec.Data, entries[rec.Index])
				}
			}
		}
		return nil
	})
	checkTree(t, s, entries)
}

// testWitnessed: certificates held for a witnessed checkpoint are listed
// once one covers the log they wait for (at least their log size), held
// again at a larger size when their request changes, and gone once
// released; the latest witnessed checkpoint is the largest kept.
func testWitnessed(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, _, err := s.WitnessedCheckpoint(ctx)
	wantErr(t, "witnessed checkpoint of a new store", err, store.ErrNotFound)
	insert(t, s, []*store.Request{newRequest("req-1", lifecycle.Fulfilled, t0), newRequest("req-2", lifecycle.Fulfilled, t0),
		newRequest("req-3", lifecycle.Fulfilled, t0)})
	mustTx(t, s, func(tx store.Tx) error {
		for id, size := range map[string]int64{"req-1": 5, "req-2": 9, "req-3": 12} {
			if err := tx.HoldCertificate(ctx, id, size); err != nil {
				return err
			}
		}
		return tx.HoldCertificate(ctx, "req-1", 10) // req-1 changed again: it waits for a larger log
	})
	held := func(size int64, limit int) []string {
		t.Helper()
		var ids []string
		mustTx(t, s, func(tx store.Tx) (err error) { ids, err = tx.HeldCertificates(ctx, size, limit); return err })
		return ids
	}
	same(t, "held for a checkpoint of 9", held(9, 10), []string{"req-2"})
	same(t, "held for a checkpoint of 12", held(12, 10), []string{"req-2", "req-1", "req-3"})
	same(t, "held, limited", held(12, 1), []string{"req-2"})
	release := func(id string, size int64) bool {
		t.Helper()
		var ok bool
		mustTx(t, s, func(tx store.Tx) (err error) { ok, err = tx.ReleaseCertificate(ctx, id, size); return err })
		return ok
	}
	if release("req-1", 9) {
		t.Error("req-1, waiting for a log of 10, was released by a checkpoint of 9")
	}
	if !release("req-2", 12) || release("req-2", 12) {
		t.Error("req-2: want released once")
	}
	same(t, "held after a release", held(12, 10), []string{"req-1", "req-3"})
	mustTx(t, s, func(tx store.Tx) error {
		if n, err := tx.HeldCertificate(ctx, "req-1"); err != nil || n != 10 {
			t.Errorf("req-1's certificate waits for %d, %v; want 10", n, err)
		}
		_, err := tx.HeldCertificate(ctx, "req-2")
		wantErr(t, "req-2's, released", err, store.ErrNotFound)
		return nil
	})
	for _, c := range []struct {
		size int64
		note string
	}{{9, "nine"}, {12, "twelve"}, {12, "twelve, cosigned again"}} {
		mustTx(t, s, func(tx store.Tx) error { return tx.PutWitnessedCheckpoint(ctx, c.size, []byte(c.note), t0) })
	}
	size, note, err := s.WitnessedCheckpoint(ctx)
	if err != nil || size != 12 || string(note) != "twelve, cosigned again" {
		t.Errorf("latest witnessed checkpoint = %d %q %v", size, note, err)
	}
}

// logByIndex reads the whole log: entry i at index i, so the indexes are
// dense from 0.
func logByIndex(t *testing.T, s store.Store) [][]byte {
	t.Helper()
	var entries [][]byte
	mustTx(t, s, func(tx store.Tx) error {
		n, err := tx.LogSize(t.Context())
		if err != nil {
			return err
		}
		recs, err := tx.LogRange(t.Context(), 0, n)
		if err != nil {
			return err
		}
		for i, rec := range recs {
			if rec.Index != int64(i) {
				t.Fatalf("log entry %d at index %d", i, rec.Index)
			}
			entries = append(entries, rec.Data)
		}
		same(t, "entries read", int64(len(entries)), n)
		return nil
	})
	return entries
}

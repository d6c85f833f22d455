package store

import (
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// hashCache keeps stored hashes of the transparency log in memory. Every
// append reads some to compute its own, and every certificate reads a
// proof's worth per log entry of its request: read from the database, they
// were a fifth of the store's critical section. A stored hash never changes
// once committed (the log only grows), so a cached one is always right;
// one written by a transaction enters the cache only after its commit.
//
// Bounded: when full it is emptied and fills again with what is read next,
// which is mostly the recent hashes and the few of the tree's upper levels
// that every proof shares.
type hashCache struct {
	mu sync.Mutex
	m  map[int64]tlog.Hash
}

const maxCachedHashes = 1 << 17 // about 8 MB

func newHashCache() *hashCache { return &hashCache{m: map[int64]tlog.Hash{}} }

func (c *hashCache) get(idx int64) (tlog.Hash, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.m[idx]
	return h, ok
}

func (c *hashCache) add(hs []storedHash) {
	if len(hs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(hs) > maxCachedHashes {
		clear(c.m)
	}
	for _, h := range hs {
		c.m[h.idx] = h.hash
	}
}

type storedHash struct {
	idx  int64
	hash tlog.Hash
}

// logWrites are the hashes a transaction wrote: read back from here inside
// it, cached once it commits, forgotten when a savepoint is rolled back.
type logWrites struct {
	list []storedHash
	at   map[int64]int // index in list
}

func (w *logWrites) add(idx int64, h tlog.Hash) {
	if w.at == nil {
		w.at = map[int64]int{}
	}
	w.at[idx] = len(w.list)
	w.list = append(w.list, storedHash{idx, h})
}

func (w *logWrites) get(idx int64) (tlog.Hash, bool) {
	i, ok := w.at[idx]
	if !ok {
		return tlog.Hash{}, false
	}
	return w.list[i].hash, true
}

// mark and undo bracket a savepoint.
func (w *logWrites) mark() int { return len(w.list) }

func (w *logWrites) undo(mark int) {
	for _, h := range w.list[mark:] {
		delete(w.at, h.idx)
	}
	w.list = w.list[:mark]
}

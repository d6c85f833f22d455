package prooftest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/proof"
)

// MemLog is a transparency log in memory, hashed as the orchestrator's log
// is (golang.org/x/mod/sumdb/tlog). The zero value is an empty log.
//
// It is safe for concurrent use, so that a test server can serve tree heads
// and proofs while the test appends.
//
// Like httptest.NewRequest, its methods panic when asked about an index or
// a size the log does not hold: that is a mistake in the test, not a result.
type MemLog struct {
	mu      sync.Mutex
	entries [][]byte
	hashes  []tlog.Hash // tlog's stored hashes, in its numbering
}

// NewMemLog returns a log holding entries, in order.
func NewMemLog(entries ...[]byte) *MemLog {
	l := &MemLog{}
	for _, e := range entries {
		l.append(e)
	}
	return l
}

// Append adds an entry (the bytes the log hashes, such as
// [proof.Entry.Encode] returns) and returns its index.
func (l *MemLog) Append(entry []byte) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.append(entry)
}

// Rewrite replaces the entry at index and recomputes the tree: the log now
// lies about its past, yet the heads it signs from here on are properly
// signed. Only a consistency proof against an older head can catch it.
func (l *MemLog) Rewrite(index int64, entry []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if index < 0 || index >= l.size() {
		panic(fmt.Sprintf("prooftest: rewrite entry %d: the log holds %d entries", index, l.size()))
	}
	entries := l.entries
	entries[index] = slices.Clone(entry)
	l.entries, l.hashes = nil, nil
	for _, e := range entries {
		l.append(e)
	}
}

// Size is the number of entries.
func (l *MemLog) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size()
}

// Root is the root hash of the tree of the first size entries.
func (l *MemLog) Root(size int64) tlog.Hash {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.root(size)
}

// Head is the tree head of the whole log, signed by s at the given time.
func (l *MemLog) Head(s *proof.Signer, at time.Time) proof.TreeHead {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.size()
	return proof.SignTreeHead(s, n, l.root(n), at)
}

// HeadAt is the tree head of the first size entries, signed by s at the
// given time: the head the log signed when it was that size.
func (l *MemLog) HeadAt(s *proof.Signer, size int64, at time.Time) proof.TreeHead {
	return proof.SignTreeHead(s, size, l.Root(size), at)
}

// ProveRecord is the proof that the tree of the first size entries holds
// the entry at index.
func (l *MemLog) ProveRecord(index, size int64) tlog.RecordProof {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := tlog.ProveRecord(size, index, l.reader())
	if err != nil {
		panic(fmt.Sprintf("prooftest: prove entry %d in the tree of %d: %v", index, size, err))
	}
	return p
}

// ProveTree is the proof that the tree of the first newer entries extends
// the tree of the first older ones.
func (l *MemLog) ProveTree(older, newer int64) tlog.TreeProof {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := tlog.ProveTree(newer, older, l.reader())
	if err != nil {
		panic(fmt.Sprintf("prooftest: prove the tree of %d in the tree of %d: %v", older, newer, err))
	}
	return p
}

// Logged is the entry at index with its proof in the tree of the first size
// entries, as a certificate carries it.
func (l *MemLog) Logged(index, size int64) proof.LoggedEntry {
	p := l.ProveRecord(index, size)
	l.mu.Lock()
	defer l.mu.Unlock()
	return proof.LoggedEntry{Index: index, Entry: slices.Clone(l.entries[index]), Proof: p}
}

// The methods below are called with l.mu held.

func (l *MemLog) size() int64 { return int64(len(l.entries)) }

func (l *MemLog) append(entry []byte) int64 {
	n := l.size()
	hs, err := tlog.StoredHashes(n, entry, l.reader())
	if err != nil {
		// The log holds every hash tlog asks for: this is a bug here.
		panic(fmt.Sprintf("prooftest: stored hashes of entry %d: %v", n, err))
	}
	l.hashes = append(l.hashes, hs...)
	l.entries = append(l.entries, slices.Clone(entry))
	return n
}

func (l *MemLog) root(size int64) tlog.Hash {
	if size < 0 || size > l.size() {
		panic(fmt.Sprintf("prooftest: tree hash of size %d: the log holds %d entries", size, l.size()))
	}
	h, err := tlog.TreeHash(size, l.reader())
	if err != nil {
		panic(fmt.Sprintf("prooftest: tree hash of size %d: %v", size, err))
	}
	return h
}

func (l *MemLog) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 || x >= int64(len(l.hashes)) {
				return nil, fmt.Errorf("stored hash %d not in a log of %d hashes", x, len(l.hashes))
			}
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

// CheckpointAt is the checkpoint of the log named origin when it held
// its first size entries, signed by s at at.
func (l *MemLog) CheckpointAt(tb testing.TB, s *proof.Signer, origin string, size int64, at time.Time) []byte {
	tb.Helper()
	c, err := proof.SignCheckpoint(s, origin, size, l.Root(size), at)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

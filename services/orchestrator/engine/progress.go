package engine

import (
	"sync"
	"time"
)

// progress is how far each system has worked through its queue of tasks,
// as its answers tell: the newest task it answered (its outbox seq, which
// orders the queue, and its publish time), and when it answered. It tells
// a task stuck behind a backlog from a task lost: a system that has
// answered since a task was published, but only tasks published before
// it, is working and has not reached it yet.
// Re-attempting such a task would only queue a copy behind it (more work
// for the system, which makes the backlog longer) and, after the last
// attempt, dead-letter a task its system is about to do; so RetryDue
// postpones it, without counting an attempt, until the system is expected
// to reach it.
//
// Each replica learns from the answers it records; a replica that has
// recorded none (one just started) re-attempts on the wait alone, as
// every replica did before.
type progress struct {
	mu     sync.Mutex
	system map[string]reach
}

// reach is one system's newest answered task: its place in the queue,
// when it was published, and when its answer was recorded.
type reach struct {
	seq                 int64
	published, answered time.Time
}

// answered records that system answered the task published at published
// as outbox message seq.
func (p *progress) answered(system string, seq int64, published, at time.Time) {
	if seq == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.system == nil {
		p.system = map[string]reach{}
	}
	r := p.system[system]
	if seq > r.seq {
		r.seq, r.published = seq, published
	}
	if at.After(r.answered) {
		r.answered = at
	}
	p.system[system] = r
}

// postpone is for a task of system, published at published as outbox
// message seq, whose wait for an answer (of length wait) is over at now.
// If the system is working through tasks queued before it, postpone
// returns when the wait should end instead, and true. It returns false if
// the task is due: the system has passed it without answering (the task
// or its answer was lost), or has answered nothing since it was published
// (the system is down or stuck).
//
// The system is expected to reach the task as long after its publication
// as its newest answered task waited for its answer (the queue's current
// lag); the wait starts then, or now if that time is past.
func (p *progress) postpone(system string, seq int64, published, now time.Time, wait time.Duration) (time.Time, bool) {
	p.mu.Lock()
	r := p.system[system]
	p.mu.Unlock()
	if seq == 0 || !r.answered.After(published) || r.seq >= seq {
		return time.Time{}, false
	}
	start := published.Add(r.answered.Sub(r.published))
	if start.Before(now) {
		start = now
	}
	return start.Add(wait), true
}

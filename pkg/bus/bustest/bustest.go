// Package bustest is the conformance suite every [bus.Bus] adapter passes,
// in the manner of watermill's universal pub/sub tests: an adapter's own
// test calls [Run] with a constructor and the [Features] that really differ
// between brokers, and the suite asserts the contract of package bus
// accordingly.
//
// It covers: the round trip with every CloudEvents attribute; order per
// key; redelivery to the group's next consumer after one died mid-handler;
// a failed handler's message retried after the delay; a permanent failure
// not retried; a re-published id (dropped by the broker, or made one effect
// by an idempotent handler); a restarted consumer resuming where it left
// off; concurrent publishers; Close while a handler is busy; cancellation;
// two groups on one topic; bad topics; and a broker restart.
//
// Every subtest uses topics, groups and message ids of its own, made unique
// per run, so the suite may run against a shared external broker. Subtests
// run one after the other: the goroutine leak checks count on it.
package bustest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/bus"
)

// Features records what differs between brokers; the suite asserts each
// behaviour as declared here.
type Features struct {
	// Dedupe: the broker drops a re-publish of a message id it has stored
	// (NATS JetStream, within its duplicate window). Without it (Kafka:
	// kafka-go has no idempotent producer) the consumer sees the duplicate
	// and only an idempotent handler keeps the effect single; the suite
	// asserts both the duplicate delivery and the single effect.
	Dedupe bool
	// MultipleGroups: several groups consuming one topic each get every
	// message (Kafka consumer groups). Without it (NATS work-queue streams,
	// which delete what a consumer acked) a topic has one group, and a
	// second group's Consume returns [bus.ErrGroupConflict].
	MultipleGroups bool
	// PerMessageNack: a message whose handler failed comes back after the
	// retry delay while the messages after it go on (NATS NakWithDelay).
	// Without it (Kafka, where a group's position is an offset) the failed
	// message is retried in place and the messages behind it wait, so the
	// order per key holds even through failures.
	PerMessageNack bool
	// BrokerCountsDeliveries: Message.Delivery counts the deliveries to
	// every member of the group (NATS). Without it (Kafka) each consumer
	// counts its own, and a message taken over from a consumer that died
	// arrives with Delivery 1.
	BrokerCountsDeliveries bool
	// RetryDelay is the delay the buses of newBus wait before a failed
	// message comes back; the suite checks it does not come back sooner.
	// Required; a few hundred milliseconds keeps the suite short.
	RetryDelay time.Duration
	// AckTimeout is how long the broker waits for the ack of a consumer
	// that vanished with a message in hand before it gives the message to
	// another member (NATS: the AckWait newBus configured; Kafka: 0, the
	// partitions move when the member leaves the group).
	AckTimeout time.Duration
	// RestartBroker stops the broker and starts it again on the same
	// address and storage, returning once it serves again. Nil skips the
	// restart test (a shared external broker).
	RestartBroker func(t *testing.T)
	// BrokerGoroutines are substrings that mark the stacks of an
	// in-process broker's goroutines ("nats-server/v2/server."), which the
	// leak checks ignore: a broker keeps goroutines for its streams and
	// groups after the clients left.
	BrokerGoroutines []string
	// Timeout bounds each wait of the suite. Default 10 s.
	Timeout time.Duration
}

// Run runs the suite. newBus returns a new connection to the broker, as a
// new process would make; the suite calls it several times in a subtest to
// play several processes or a restart, and closes what it returns (Close
// must be safe to call twice).
func Run(t *testing.T, f Features, newBus func(t *testing.T) bus.Bus) {
	if f.RetryDelay <= 0 {
		t.Fatal("bustest: Features.RetryDelay must be set to the retry delay of the buses")
	}
	if f.Timeout == 0 {
		f.Timeout = 10 * time.Second
	}
	s := &suite{f: f, newBus: newBus, run: strconv.FormatInt(time.Now().UnixNano(), 36)}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *suite)
	}{
		{"RoundTrip", testRoundTrip},
		{"OrderPerKey", testOrderPerKey},
		{"RedeliveryAfterConsumerDies", testRedeliveryAfterConsumerDies},
		{"NackWithDelay", testNackWithDelay},
		{"PermanentNotRedelivered", testPermanent},
		{"DuplicatePublish", testDuplicate},
		{"RestartResumes", testRestartResumes},
		{"ConcurrentPublishers", testConcurrentPublishers},
		{"CloseWhileBusy", testCloseWhileBusy},
		{"ContextCancel", testContextCancel},
		{"TwoGroups", testTwoGroups},
		{"BadTopic", testBadTopic},
		{"BrokerRestart", testBrokerRestart},
		{"PublishBatch", testPublishBatch},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) })
	}
}

type suite struct {
	f      Features
	newBus func(t *testing.T) bus.Bus
	run    string
	n      atomic.Int64
}

// names are the subtest's own topic, group and message id prefix.
type names struct {
	topic, group, id string
}

func (s *suite) names(t *testing.T) names {
	base := strings.ToLower(t.Name()[strings.LastIndexByte(t.Name(), '/')+1:])
	u := fmt.Sprintf("%s-%s-%d", base, s.run, s.n.Add(1))
	return names{topic: "test." + u, group: "g-" + u, id: u}
}

func (n names) msgID(local string) string { return n.id + "-" + local }

// open returns a new bus closed at the end of the subtest.
func (s *suite) open(t *testing.T) bus.Bus {
	t.Helper()
	b := s.newBus(t)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func newMsg(id, key, data string) *bus.Message {
	return &bus.Message{ID: id, Type: "dev.lethe.bustest.v1", Source: "bustest", Key: key, Data: []byte(data)}
}

func (s *suite) publish(t *testing.T, b bus.Bus, topic string, msgs ...*bus.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.f.Timeout)
	defer cancel()
	for _, m := range msgs {
		if err := b.Publish(ctx, topic, m); err != nil {
			t.Fatalf("publish %s: %v", m.ID, err)
		}
	}
}

// consumer is one Consume call running in the background.
type consumer struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (s *suite) consume(t *testing.T, b bus.Bus, topic, group string, h bus.Handler) *consumer {
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = b.Consume(ctx, topic, group, h)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.done:
		case <-time.After(s.f.Timeout):
			t.Errorf("Consume(%s, %s) still running %v after its context was cancelled", topic, group, s.f.Timeout)
		}
	})
	return c
}

// wait waits for Consume to return by itself.
func (c *consumer) wait(t *testing.T, d time.Duration, what string) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(d):
		t.Fatalf("Consume did not return within %v %s", d, what)
		return nil
	}
}

// stop cancels Consume and asserts it returns nil promptly.
func (c *consumer) stop(t *testing.T, d time.Duration) {
	t.Helper()
	c.cancel()
	if err := c.wait(t, d, "of its context being cancelled"); err != nil {
		t.Fatalf("Consume returned %v after its context was cancelled, want nil", err)
	}
}

// delivery is one call of a handler.
type delivery struct {
	msg *bus.Message
	at  time.Time
}

// recorder records deliveries; a handler built on it may fail some.
type recorder struct {
	mu   sync.Mutex
	seen []delivery
}

// handler records each delivery and returns what fail says (nil: success).
func (r *recorder) handler(fail func(m *bus.Message) error) bus.Handler {
	return func(_ context.Context, m *bus.Message) error {
		r.mu.Lock()
		r.seen = append(r.seen, delivery{msg: m, at: time.Now()})
		r.mu.Unlock()
		if fail != nil {
			return fail(m)
		}
		return nil
	}
}

func (r *recorder) all() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func (r *recorder) ids() []string {
	var ids []string
	for _, d := range r.all() {
		ids = append(ids, d.msg.ID)
	}
	return ids
}

func (r *recorder) count(id string) int {
	n := 0
	for _, d := range r.all() {
		if d.msg.ID == id {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or d has passed.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(d, cond) {
		t.Fatalf("waited %v for %s", d, what)
	}
}

func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitIDs waits until every id was delivered at least once.
func (s *suite) waitIDs(t *testing.T, r *recorder, d time.Duration, ids ...string) {
	t.Helper()
	var missing []string
	ok := poll(d, func() bool {
		got := r.ids()
		missing = missing[:0]
		for _, id := range ids {
			if !slices.Contains(got, id) {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	})
	if !ok {
		t.Fatalf("waited %v for %d messages: %d missing %v; delivered %v", d, len(ids), len(missing), missing, r.ids())
	}
}

func testRoundTrip(t *testing.T, s *suite) {
	n := s.names(t)
	b := s.open(t)
	at := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	// Published before the group exists: a new group gets it too.
	first := &bus.Message{ID: n.msgID("1"), Type: "dev.lethe.bustest.v1", Source: "bustest/roundtrip", Time: at, Key: "request-1", Data: []byte{0, 1, 2, 0xff, '\n'}}
	s.publish(t, b, n.topic, first)
	var r recorder
	c := s.consume(t, b, n.topic, n.group, r.handler(nil))
	s.waitIDs(t, &r, s.f.Timeout, first.ID)
	got := r.all()[0].msg
	if got.ID != first.ID || got.Type != first.Type || got.Source != first.Source || got.Key != first.Key ||
		!got.Time.Equal(at) || string(got.Data) != string(first.Data) || got.Delivery != 1 {
		t.Fatalf("delivered %+v, want the attributes of %+v and Delivery 1", got, first)
	}
	// Published while the group consumes; no time, key or data: the time
	// is the publishing time.
	before := time.Now()
	second := &bus.Message{ID: n.msgID("2"), Type: "dev.lethe.bustest.other.v1", Source: "bustest/roundtrip"}
	s.publish(t, b, n.topic, second)
	after := time.Now()
	s.waitIDs(t, &r, s.f.Timeout, second.ID)
	got = r.all()[1].msg
	if got.Type != second.Type || got.Source != second.Source || got.Key != "" || len(got.Data) != 0 || got.Delivery != 1 {
		t.Fatalf("delivered %+v, want the attributes of %+v", got, second)
	}
	if got.Time.Before(before.Add(-time.Second)) || got.Time.After(after.Add(time.Second)) {
		t.Fatalf("a message published without a time has time %v, want the publishing time (%v .. %v)", got.Time, before, after)
	}
	c.stop(t, s.f.Timeout)
	if len(r.all()) != 2 {
		t.Fatalf("delivered %v, want each message once", r.ids())
	}
}

// testPublishBatch: a bus.BatchPublisher delivers every message of a
// batch once, in order per topic; a closed bus answers ErrClosed for each.
func testPublishBatch(t *testing.T, s *suite) {
	n := s.names(t)
	b := s.open(t)
	bp, ok := b.(bus.BatchPublisher)
	if !ok {
		t.Skip("this bus publishes one message at a time (no bus.BatchPublisher)")
	}
	topics := []string{n.topic + "-a", n.topic + "-b"}
	var batch []bus.Outgoing
	var want [2][]string
	for i := range 40 {
		m := newMsg(n.msgID(strconv.Itoa(i)), "k", strconv.Itoa(i))
		batch = append(batch, bus.Outgoing{Topic: topics[i%2], Msg: m})
		want[i%2] = append(want[i%2], m.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.f.Timeout)
	defer cancel()
	for i, err := range bp.PublishBatch(ctx, batch) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for i, topic := range topics {
		var r recorder
		c := s.consume(t, b, topic, n.group+strconv.Itoa(i), r.handler(nil))
		s.waitIDs(t, &r, s.f.Timeout, want[i]...)
		c.stop(t, s.f.Timeout)
		if got := r.ids(); !slices.Equal(got, want[i]) {
			t.Errorf("%s delivered %v, want %v: each once, in the order published", topic, got, want[i])
		}
	}
	closed := s.newBus(t)
	_ = closed.Close()
	for i, err := range closed.(bus.BatchPublisher).PublishBatch(ctx, batch[:2]) {
		if !errors.Is(err, bus.ErrClosed) {
			t.Errorf("message %d on a closed bus: %v, want bus.ErrClosed", i, err)
		}
	}
}

func testOrderPerKey(t *testing.T, s *suite) {
	n := s.names(t)
	b := s.open(t)
	keys := []string{"request-a", "request-b", "request-c"}
	const per = 30
	for i := range per {
		for _, k := range keys {
			s.publish(t, b, n.topic, newMsg(n.msgID(fmt.Sprintf("%s-%02d", k, i)), k, strconv.Itoa(i)))
		}
	}
	var r recorder
	c := s.consume(t, b, n.topic, n.group, r.handler(nil))
	waitFor(t, s.f.Timeout, fmt.Sprintf("%d messages", per*len(keys)), func() bool { return len(r.all()) >= per*len(keys) })
	c.stop(t, s.f.Timeout)
	byKey := map[string][]string{}
	for _, d := range r.all() {
		byKey[d.msg.Key] = append(byKey[d.msg.Key], string(d.msg.Data))
	}
	var want []string
	for i := range per {
		want = append(want, strconv.Itoa(i))
	}
	for _, k := range keys {
		if !slices.Equal(byKey[k], want) {
			t.Errorf("key %s: delivered in the order %v, want %v", k, byKey[k], want)
		}
	}
}

// A consumer cut short in the middle of a handler (its process stopping)
// did not acknowledge: the next consumer of the group gets the message.
func testRedeliveryAfterConsumerDies(t *testing.T, s *suite) {
	n := s.names(t)
	b1 := s.open(t)
	m := newMsg(n.msgID("1"), "request-1", "work")
	s.publish(t, b1, n.topic, m)
	started := make(chan *bus.Message, 1)
	c1 := s.consume(t, b1, n.topic, n.group, func(ctx context.Context, m *bus.Message) error {
		select {
		case started <- m:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	})
	var first *bus.Message
	select {
	case first = <-started:
	case <-time.After(s.f.Timeout):
		t.Fatal("the first consumer got nothing")
	}
	c1.stop(t, s.f.Timeout)
	_ = b1.Close()

	b2 := s.open(t)
	var r recorder
	c2 := s.consume(t, b2, n.topic, n.group, r.handler(nil))
	s.waitIDs(t, &r, s.f.Timeout+s.f.RetryDelay+s.f.AckTimeout, m.ID)
	c2.stop(t, s.f.Timeout)
	got := r.all()[0].msg
	if string(got.Data) != "work" {
		t.Fatalf("redelivered %q, want %q", got.Data, "work")
	}
	want := 1
	if s.f.BrokerCountsDeliveries {
		want = first.Delivery + 1
	}
	if got.Delivery != want {
		t.Fatalf("redelivery has Delivery %d, want %d (broker counts deliveries: %v)", got.Delivery, want, s.f.BrokerCountsDeliveries)
	}
}

func testNackWithDelay(t *testing.T, s *suite) {
	n := s.names(t)
	b := s.open(t)
	a, next := newMsg(n.msgID("a"), "request-1", "a"), newMsg(n.msgID("b"), "request-1", "b")
	s.publish(t, b, n.topic, a, next)
	var r recorder
	c := s.consume(t, b, n.topic, n.group, r.handler(func(m *bus.Message) error {
		if m.ID == a.ID && m.Delivery == 1 {
			return errors.New("try again later")
		}
		return nil
	}))
	waitFor(t, s.f.Timeout+s.f.RetryDelay, "the failed message again and the next one", func() bool {
		return r.count(a.ID) >= 2 && r.count(next.ID) >= 1
	})
	c.stop(t, s.f.Timeout)
	var order []string
	var failed, again time.Time
	for _, d := range r.all() {
		order = append(order, fmt.Sprintf("%s/%d", d.msg.Data, d.msg.Delivery))
		if d.msg.ID == a.ID && d.msg.Delivery == 1 {
			failed = d.at
		}
		if d.msg.ID == a.ID && d.msg.Delivery == 2 {
			again = d.at
		}
	}
	if again.IsZero() {
		t.Fatalf("deliveries %v: the failed message did not come back with Delivery 2", order)
	}
	if wait := again.Sub(failed); wait < s.f.RetryDelay*9/10 {
		t.Errorf("the failed message came back after %v, want the retry delay %v", wait, s.f.RetryDelay)
	}
	want := []string{"a/1", "a/2", "b/1"} // retried in place: b waits
	if s.f.PerMessageNack {
		want = []string{"a/1", "b/1", "a/2"} // b goes on meanwhile
	}
	if !slices.Equal(order, want) {
		t.Errorf("deliveries %v, want %v (per-message nack: %v)", order, want, s.f.PerMessageNack)
	}
}

func testPermanent(t *testing.T, s *suite) {
	n := s.names(t)
	b := s.open(t)
	poison, ok := newMsg(n.msgID("poison"), "request-1", "poison"), newMsg(n.msgID("ok"), "request-1", "ok")
	s.publish(t, b, n.topic, poison, ok)
	var r recorder
	h := r.handler(func(m *bus.Message) error {
		if m.ID == poison.ID {
			return fmt.Errorf("handle: %w", bus.Permanent(errors.New("cannot decode")))
		}
		return nil
	})
	c := s.consume(t, b, n.topic, n.group, h)
	s.waitIDs(t, &r, s.f.Timeout, ok.ID)
	time.Sleep(3 * s.f.RetryDelay) // a redelivery would come by now
	c.stop(t, s.f.Timeout)
	if got := r.count(poison.ID); got != 1 {
		t.Fatalf("the message refused for good was delivered %d times, want 1", got)
	}
	// Nor does it come back to the group's next consumer.
	_ = b.Close()
	b2 := s.open(t)
	marker := newMsg(n.msgID("marker"), "request-1", "marker")
	s.publish(t, b2, n.topic, marker)
	var r2 recorder
	c2 := s.consume(t, b2, n.topic, n.group, r2.handler(nil))
	s.waitIDs(t, &r2, s.f.Timeout, marker.ID)
	c2.stop(t, s.f.Timeout)
	if ids := r2.ids(); !slices.Equal(ids, []string{marker.ID}) {
		t.Fatalf("after a restart the group got %v, want only the new message", ids)
	}
}

// A publisher that retries after a crash re-publishes the same id: a
// broker that de-duplicates drops it; otherwise the handler, idempotent by
// message id as Lethe's are, makes one effect of two deliveries.
func testDuplicate(t *testing.T, s *suite) {
	n := s.names(t)
	b := s.open(t)
	dup := newMsg(n.msgID("dup"), "request-1", "effect")
	marker := newMsg(n.msgID("marker"), "request-1", "marker")
	s.publish(t, b, n.topic, dup, newMsg(dup.ID, dup.Key, "effect"), marker)
	var mu sync.Mutex
	done := map[string]bool{}
	effects := map[string]int{}
	var r recorder
	c := s.consume(t, b, n.topic, n.group, r.handler(func(m *bus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if !done[m.ID] {
			done[m.ID] = true
			effects[string(m.Data)]++
		}
		return nil
	}))
	s.waitIDs(t, &r, s.f.Timeout, marker.ID)
	c.stop(t, s.f.Timeout)
	want := 2
	if s.f.Dedupe {
		want = 1
	}
	if got := r.count(dup.ID); got != want {
		t.Errorf("the re-published id was delivered %d times, want %d (broker de-duplicates: %v)", got, want, s.f.Dedupe)
	}
	mu.Lock()
	defer mu.Unlock()
	if effects["effect"] != 1 {
		t.Errorf("the idempotent handler made %d effects, want 1", effects["effect"])
	}
}

// A consumer that stops cleanly and a new one of the group resume where the
// first left off: nothing handled twice, nothing lost.
func testRestartResumes(t *testing.T, s *suite) {
	n := s.names(t)
	b1 := s.open(t)
	var ids []string
	publish := func(b bus.Bus, from, to int) {
		for i := from; i < to; i++ {
			m := newMsg(n.msgID(fmt.Sprintf("%02d", i)), fmt.Sprintf("request-%d", i%4), strconv.Itoa(i))
			ids = append(ids, m.ID)
			s.publish(t, b, n.topic, m)
		}
	}
	publish(b1, 0, 20)
	var mu sync.Mutex
	handled := map[string]int{}
	total := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(handled)
	}
	ctx1, stop1 := context.WithCancel(context.Background())
	defer stop1()
	c1 := &consumer{done: make(chan struct{})}
	go func() {
		defer close(c1.done)
		c1.err = b1.Consume(ctx1, n.topic, n.group, func(ctx context.Context, m *bus.Message) error {
			if ctx.Err() != nil {
				return ctx.Err() // stopping: not handled
			}
			mu.Lock()
			defer mu.Unlock()
			handled[m.ID]++
			if len(handled) == 8 {
				stop1() // the service stops after a clean ack
			}
			return nil
		})
	}()
	if err := c1.wait(t, s.f.Timeout, "of the handler stopping it"); err != nil {
		t.Fatalf("Consume returned %v after its context was cancelled, want nil", err)
	}
	_ = b1.Close()
	if got := total(); got != 8 {
		t.Fatalf("the first consumer handled %d messages, want 8", got)
	}
	b2 := s.open(t)
	publish(b2, 20, 30) // published while no consumer runs
	c2 := s.consume(t, b2, n.topic, n.group, func(ctx context.Context, m *bus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		handled[m.ID]++
		return nil
	})
	waitFor(t, s.f.Timeout+s.f.AckTimeout, "every message to be handled", func() bool { return total() == len(ids) })
	// A message handled twice would come back within the ack timeout.
	time.Sleep(s.f.AckTimeout + 2*s.f.RetryDelay)
	c2.stop(t, s.f.Timeout)
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if handled[id] != 1 {
			t.Errorf("message %s handled %d times, want once", id, handled[id])
		}
	}
}

func testConcurrentPublishers(t *testing.T, s *suite) {
	n := s.names(t)
	b := s.open(t)
	const publishers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, publishers*each)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), s.f.Timeout)
			defer cancel()
			for i := range each {
				m := newMsg(n.msgID(fmt.Sprintf("%d-%02d", p, i)), fmt.Sprintf("request-%d", p), strconv.Itoa(i))
				if err := b.Publish(ctx, n.topic, m); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent publish: %v", err)
	}
	var r recorder
	c := s.consume(t, b, n.topic, n.group, r.handler(nil))
	waitFor(t, s.f.Timeout, fmt.Sprintf("%d messages", publishers*each), func() bool { return len(r.all()) >= publishers*each })
	c.stop(t, s.f.Timeout)
	seen := map[string]bool{}
	byKey := map[string][]string{}
	for _, d := range r.all() {
		if seen[d.msg.ID] {
			t.Errorf("message %s delivered twice", d.msg.ID)
		}
		seen[d.msg.ID] = true
		byKey[d.msg.Key] = append(byKey[d.msg.Key], string(d.msg.Data))
	}
	var want []string
	for i := range each {
		want = append(want, strconv.Itoa(i))
	}
	for p := range publishers {
		if k := fmt.Sprintf("request-%d", p); !slices.Equal(byKey[k], want) {
			t.Errorf("publisher %d: delivered in the order %v, want %v", p, byKey[k], want)
		}
	}
}

// Close with a handler in flight returns at once, as a crash would cut it;
// the unacknowledged message goes to the group's next consumer; the
// handler returning later on the closed bus does no harm; Consume returns
// ErrClosed by itself; and nothing of the bus keeps running.
func testCloseWhileBusy(t *testing.T, s *suite) {
	n := s.names(t)
	before := goroutines()
	b1 := s.open(t)
	m := newMsg(n.msgID("1"), "request-1", "work")
	s.publish(t, b1, n.topic, m)
	started, release := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	unblock := func() { released.Do(func() { close(release) }) }
	c1 := s.consume(t, b1, n.topic, n.group, func(context.Context, *bus.Message) error {
		once.Do(func() { close(started) })
		<-release
		return nil
	})
	t.Cleanup(unblock) // registered last, so it runs before the consumer's cleanup waits
	select {
	case <-started:
	case <-time.After(s.f.Timeout):
		t.Fatal("the consumer got nothing")
	}
	closed := make(chan error, 1)
	go func() { closed <- b1.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(s.f.Timeout):
		t.Fatalf("Close did not return within %v while a handler was in flight", s.f.Timeout)
	}
	if err := b1.Publish(context.Background(), n.topic, newMsg(n.msgID("late"), "", "")); err == nil {
		t.Error("Publish on a closed bus succeeded")
	}

	b2 := s.open(t)
	var r recorder
	c2 := s.consume(t, b2, n.topic, n.group, r.handler(nil))
	s.waitIDs(t, &r, s.f.Timeout+s.f.AckTimeout, m.ID)

	unblock()
	if err := c1.wait(t, s.f.Timeout, "of its bus being closed"); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Consume on a closed bus returned %v, want ErrClosed", err)
	}
	c2.stop(t, s.f.Timeout)
	if err := b2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	_ = b1.Close() // a second Close is harmless
	s.noLeaks(t, before)
}

func testContextCancel(t *testing.T, s *suite) {
	n := s.names(t)
	before := goroutines()
	b := s.open(t)
	// Cancelled before it starts.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := &consumer{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = b.Consume(ctx, n.topic, n.group, func(context.Context, *bus.Message) error { return nil })
	}()
	if err := c.wait(t, s.f.Timeout, "with a cancelled context"); err != nil {
		t.Fatalf("Consume with a cancelled context returned %v, want nil", err)
	}
	// Cancelled while idle.
	var r recorder
	c = s.consume(t, b, n.topic, n.group, r.handler(nil))
	s.publish(t, b, n.topic, newMsg(n.msgID("1"), "request-1", "1"))
	s.waitIDs(t, &r, s.f.Timeout, n.msgID("1"))
	c.stop(t, s.f.Timeout)
	// Cancelled while a handler works: the handler sees the cancellation.
	started := make(chan struct{})
	var once sync.Once
	c = s.consume(t, b, n.topic, n.group, func(ctx context.Context, _ *bus.Message) error {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return ctx.Err()
	})
	s.publish(t, b, n.topic, newMsg(n.msgID("2"), "request-1", "2"))
	select {
	case <-started:
	case <-time.After(s.f.Timeout):
		t.Fatal("the consumer got nothing")
	}
	c.stop(t, s.f.Timeout)
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	s.noLeaks(t, before)
}

func testTwoGroups(t *testing.T, s *suite) {
	n := s.names(t)
	b := s.open(t)
	var ids []string
	for i := range 5 {
		m := newMsg(n.msgID(strconv.Itoa(i)), "request-1", strconv.Itoa(i))
		ids = append(ids, m.ID)
		s.publish(t, b, n.topic, m)
	}
	var ra, rb recorder
	ca := s.consume(t, b, n.topic, n.group+"-a", ra.handler(nil))
	s.waitIDs(t, &ra, s.f.Timeout, ids[0]) // the first group is set up
	if s.f.MultipleGroups {
		cb := s.consume(t, b, n.topic, n.group+"-b", rb.handler(nil))
		s.waitIDs(t, &ra, s.f.Timeout, ids...)
		s.waitIDs(t, &rb, s.f.Timeout, ids...)
		ca.stop(t, s.f.Timeout)
		cb.stop(t, s.f.Timeout)
		if len(ra.all()) != len(ids) || len(rb.all()) != len(ids) {
			t.Fatalf("group a got %v, group b got %v: want each message once in each group", ra.ids(), rb.ids())
		}
		return
	}
	cb := s.consume(t, b, n.topic, n.group+"-b", rb.handler(nil))
	if err := cb.wait(t, s.f.Timeout, "for a second group on a topic that allows one"); !errors.Is(err, bus.ErrGroupConflict) {
		t.Fatalf("a second group's Consume returned %v, want ErrGroupConflict", err)
	}
	s.waitIDs(t, &ra, s.f.Timeout, ids...)
	ca.stop(t, s.f.Timeout)
	if len(rb.all()) != 0 || len(ra.all()) != len(ids) {
		t.Fatalf("group a got %v, group b got %v: want all in group a only", ra.ids(), rb.ids())
	}
}

func testBadTopic(t *testing.T, s *suite) {
	b := s.open(t)
	for _, topic := range []string{"", "task", ".x", "x.", "x..y", "task.*", "task.>", "task.a b", "task.a/b"} {
		if err := b.Publish(context.Background(), topic, newMsg("bad", "", "")); !errors.Is(err, bus.ErrBadTopic) {
			t.Errorf("Publish(%q) = %v, want ErrBadTopic", topic, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.f.Timeout)
		err := b.Consume(ctx, topic, "g", func(context.Context, *bus.Message) error { return nil })
		if ctx.Err() != nil {
			t.Errorf("Consume(%q) ran until its context ran out, want ErrBadTopic at once", topic)
		}
		cancel()
		if !errors.Is(err, bus.ErrBadTopic) {
			t.Errorf("Consume(%q) = %v, want ErrBadTopic", topic, err)
		}
	}
}

// The broker restarts under a running consumer: what was stored before
// survives, the consumer rides out the outage, and publishing works again.
func testBrokerRestart(t *testing.T, s *suite) {
	if s.f.RestartBroker == nil {
		t.Skip("Features.RestartBroker is nil: this broker cannot be restarted from the test")
	}
	n := s.names(t)
	stored := n.topic + "-stored"
	b := s.open(t)
	var r recorder
	c := s.consume(t, b, n.topic, n.group, r.handler(nil))
	var ids, kept []string
	for i := range 10 {
		ids = append(ids, n.msgID(strconv.Itoa(i)))
	}
	for i := range 3 {
		kept = append(kept, n.msgID("stored-"+strconv.Itoa(i)))
	}
	for _, id := range ids[:5] {
		s.publish(t, b, n.topic, newMsg(id, "request-1", id))
	}
	for _, id := range kept {
		s.publish(t, b, stored, newMsg(id, "request-2", id))
	}
	s.waitIDs(t, &r, s.f.Timeout, ids[:5]...)

	s.f.RestartBroker(t)

	// The client reconnects in the background; a publisher retries, as
	// Lethe's outbox relay does.
	for _, id := range ids[5:] {
		deadline := time.Now().Add(s.f.Timeout)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), s.f.Timeout/4)
			err := b.Publish(ctx, n.topic, newMsg(id, "request-1", id))
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish after the broker restarted: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	s.waitIDs(t, &r, 2*s.f.Timeout+s.f.AckTimeout, ids...)
	c.stop(t, s.f.Timeout)
	var r2 recorder
	c2 := s.consume(t, b, stored, n.group, r2.handler(nil))
	s.waitIDs(t, &r2, s.f.Timeout, kept...)
	c2.stop(t, s.f.Timeout)
}

// goroutines returns the stacks of the running goroutines by id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	all := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, " [")
		all[head] = g
	}
	return all
}

// noLeaks fails t if goroutines started since before, other than the
// broker's, are still running after a bounded wait.
func (s *suite) noLeaks(t *testing.T, before map[string]string) {
	t.Helper()
	deadline := time.Now().Add(s.f.Timeout)
	for {
		var leaked []string
		for id, stack := range goroutines() {
			if _, ok := before[id]; ok || s.brokers(stack) {
				continue
			}
			leaked = append(leaked, stack)
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines still running %v after the bus was closed:\n\n%s", len(leaked), s.f.Timeout, strings.Join(leaked, "\n\n"))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *suite) brokers(stack string) bool {
	for _, sub := range s.f.BrokerGoroutines {
		if strings.Contains(stack, sub) {
			return true
		}
	}
	return false
}

package natsbus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/bustest"
)

// features are JetStream's with Lethe's work-queue streams.
var features = bustest.Features{
	Dedupe:                 true,  // Nats-Msg-Id within the duplicate window
	MultipleGroups:         false, // a work queue has one consumer per subject
	PerMessageNack:         true,  // NakWithDelay
	BrokerCountsDeliveries: true,  // NumDelivered
	RetryDelay:             250 * time.Millisecond,
	AckTimeout:             time.Second, // the AckWait of testConfig
}

func testConfig(prefix string) Config {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return Config{
		Prefix:         prefix,
		RetryDelay:     features.RetryDelay,
		AckWait:        features.AckTimeout,
		ConnectTimeout: 10 * time.Second,
		// Notice a restarted server sooner: a pull request or an API
		// request made as it went away gets no answer.
		FetchWait:      time.Second,
		RequestTimeout: 2 * time.Second,
		Name:           "lethe-bustest",
		Logger:         logger,
	}
}

// prefix is a run's own: the external server is shared.
func prefix() string { return "t" + strconv.FormatInt(time.Now().UnixNano(), 36) }

func connect(t *testing.T, url string, cfg Config) *Bus {
	t.Helper()
	b, err := Connect(context.Background(), url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func embedded(t *testing.T) *Embedded {
	t.Helper()
	srv, err := StartEmbedded(t.TempDir(), "127.0.0.1", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// TestBus runs the conformance suite on the embedded server and, when
// LETHE_TEST_NATS_URL names one, on an external server (CI's is an older
// release, v2.9: the adapter must work there too).
func TestBus(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		dir := t.TempDir()
		srv, err := StartEmbedded(dir, "127.0.0.1", -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Shutdown() })
		u, err := url.Parse(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(u.Port())
		f := features
		f.BrokerGoroutines = []string{"nats-server/v2/server."}
		f.RestartBroker = func(t *testing.T) {
			srv.Shutdown()
			if srv, err = StartEmbedded(dir, "127.0.0.1", port, nil); err != nil {
				t.Fatal(err)
			}
		}
		cfg := testConfig(prefix())
		bustest.Run(t, f, func(t *testing.T) bus.Bus { return connect(t, u.String(), cfg) })
	})
	t.Run("external", func(t *testing.T) {
		url := os.Getenv("LETHE_TEST_NATS_URL")
		if url == "" {
			t.Skip("LETHE_TEST_NATS_URL is not set: no external NATS server to test against")
		}
		cfg := testConfig(prefix())
		t.Cleanup(func() { deleteStreams(t, url, cfg.Prefix) })
		bustest.Run(t, features, func(t *testing.T) bus.Bus { return connect(t, url, cfg) })
	})
}

// deleteStreams removes a run's streams from a shared server.
func deleteStreams(t *testing.T, url, prefix string) {
	b, err := Connect(context.Background(), url, Config{Prefix: prefix})
	if err != nil {
		t.Error(err)
		return
	}
	defer b.Close()
	names := b.js.StreamNames(context.Background())
	for name := range names.Name() {
		if strings.HasPrefix(name, strings.ToUpper(prefix)+"_") {
			if err := b.js.DeleteStream(context.Background(), name); err != nil {
				t.Errorf("delete stream %s: %v", name, err)
			}
		}
	}
}

// A work queue keeps nothing that was handled: task payloads name the
// subject of a request.
func TestHandledMessagesLeaveTheStream(t *testing.T) {
	srv := embedded(t)
	cfg := testConfig(prefix())
	b := connect(t, srv.URL(), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		if err := b.Publish(ctx, "task.wq", &bus.Message{ID: fmt.Sprint(i), Type: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	cctx, stop := context.WithCancel(ctx)
	err := b.Consume(cctx, "task.wq", "g", func(_ context.Context, m *bus.Message) error {
		if n++; n == 3 {
			stop()
		}
		if m.ID == "1" {
			return bus.Permanent(fmt.Errorf("cannot decode"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.js.Stream(ctx, strings.ToUpper(cfg.Prefix+"_task"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second) // acks are asynchronous
	for {
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d handled messages are still in the stream", info.State.Msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A handler that works longer than the ack wait keeps its message: the
// adapter tells the server it is still in progress, so it is not handed to
// the other, idle member of the group.
func TestLongHandlerNotRedelivered(t *testing.T) {
	srv := embedded(t)
	b, err := Connect(context.Background(), srv.URL(), Config{AckWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var mu sync.Mutex
	var seen []string
	h := func(_ context.Context, m *bus.Message) error {
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s/%d", m.Data, m.Delivery))
		mu.Unlock()
		time.Sleep(time.Second) // over three ack waits
		return nil
	}
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); b.Consume(ctx, "task.slow", "g", h) }()
	}
	time.Sleep(200 * time.Millisecond) // both members are waiting
	if err := b.Publish(ctx, "task.slow", &bus.Message{ID: "slow", Type: "x", Data: []byte("slow")}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if fmt.Sprint(seen) != "[slow/1]" {
		t.Fatalf("deliveries %v, want [slow/1]", seen)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, prefix := range []string{"a.b", "a*", "a>", "a b"} {
		if err := (Config{Prefix: prefix}).Validate(); err == nil {
			t.Errorf("prefix %q accepted", prefix)
		}
	}
	if err := (Config{Prefix: "lethe"}).Validate(); err != nil {
		t.Error(err)
	}
}

// Notices name the person they tell: their stream keeps a message days,
// not the months tasks may wait.
func TestNoticeStreamAgeLimit(t *testing.T) {
	srv := embedded(t)
	cfg := testConfig(prefix())
	b := connect(t, srv.URL(), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, topic := range []string{"notice.v1", "task.x"} {
		if err := b.Publish(ctx, topic, &bus.Message{ID: topic, Type: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for kind, want := range map[string]time.Duration{"notice": NoticeMaxAge, "task": 90 * 24 * time.Hour} {
		st, err := b.js.Stream(ctx, strings.ToUpper(cfg.Prefix+"_"+kind))
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.MaxAge != want {
			t.Errorf("%s stream keeps messages %v, want %v", kind, info.Config.MaxAge, want)
		}
	}
}

// With Handlers > 1 a Consume hands that many messages out at once (each
// handled once), and no more.
func TestHandlersOverlap(t *testing.T) {
	for _, tc := range []struct{ handlers, want int }{{1, 1}, {4, 4}} {
		t.Run(strconv.Itoa(tc.handlers), func(t *testing.T) {
			cfg := testConfig(prefix())
			cfg.Handlers = tc.handlers
			b := connect(t, embedded(t).URL(), cfg)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			const n = 12
			for i := range n {
				if err := b.Publish(ctx, "test.overlap", &bus.Message{ID: strconv.Itoa(i), Type: "t"}); err != nil {
					t.Fatal(err)
				}
			}
			var mu sync.Mutex
			inFlight, most, seen := 0, 0, map[string]int{}
			done := make(chan struct{})
			go b.Consume(ctx, "test.overlap", "g", func(ctx context.Context, m *bus.Message) error {
				mu.Lock()
				inFlight++
				most = max(most, inFlight)
				seen[m.ID]++
				if len(seen) == n {
					close(done)
				}
				mu.Unlock()
				time.Sleep(50 * time.Millisecond) // long enough for the others to be handed out
				mu.Lock()
				inFlight--
				mu.Unlock()
				return nil
			})
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("not every message was handled")
			}
			mu.Lock()
			defer mu.Unlock()
			if most != tc.want {
				t.Errorf("%d handlers ran at once, want %d", most, tc.want)
			}
			for id, c := range seen {
				if c != 1 {
					t.Errorf("message %s handled %d times", id, c)
				}
			}
		})
	}
}

// A consumer takes no more messages than it has free handlers: one it
// took and could not start on would wait out the ack wait (30 s here)
// before another member of the group got it.
func TestNoMessageWaitsInTheClient(t *testing.T) {
	srv := embedded(t)
	cfg := testConfig(prefix())
	cfg.AckWait = 30 * time.Second
	cfg.Handlers = 2
	busy := connect(t, srv.URL(), cfg)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const n = 6
	for i := range n {
		if err := busy.Publish(ctx, "test.held", &bus.Message{ID: strconv.Itoa(i), Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	held := make(chan string, n)
	go busy.Consume(ctx, "test.held", "g", func(ctx context.Context, m *bus.Message) error {
		held <- m.ID
		<-ctx.Done() // stuck until the test ends
		return ctx.Err()
	})
	for range cfg.Handlers {
		select {
		case <-held:
		case <-time.After(10 * time.Second):
			t.Fatal("the stuck consumer took no message")
		}
	}
	free := connect(t, srv.URL(), cfg)
	var mu sync.Mutex
	got := map[string]bool{}
	go free.Consume(ctx, "test.held", "g", func(ctx context.Context, m *bus.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[m.ID] = true
		return nil
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		count := len(got)
		mu.Unlock()
		if count == n-cfg.Handlers {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the free consumer got %d of the %d messages the stuck one had no handler for", count, n-cfg.Handlers)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case id := <-held:
		t.Errorf("the stuck consumer took message %s beyond its %d handlers", id, cfg.Handlers)
	default:
	}
}

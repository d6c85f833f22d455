package natsbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/bus"
)

// servers returns the NATS servers to test against: the embedded one, and
// the external one named by LETHE_TEST_NATS_URL (CI's may be an older
// release: the adapter must work there too).
func servers(t *testing.T) map[string]string {
	srv, err := StartEmbedded(t.TempDir(), "127.0.0.1", -1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return map[string]string{"embedded": srv.URL(), "external": os.Getenv("LETHE_TEST_NATS_URL")}
}

func TestBus(t *testing.T) {
	for name, url := range servers(t) {
		t.Run(name, func(t *testing.T) {
			if url == "" {
				t.Skip("LETHE_TEST_NATS_URL is not set: no external NATS server to test against")
			}
			// A prefix of our own: the external server is shared.
			prefix := fmt.Sprintf("t%d", time.Now().UnixNano())
			connect := func() *Bus {
				b, err := Connect(context.Background(), url, Config{Prefix: prefix, RetryDelay: 20 * time.Millisecond, AckWait: time.Second})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				return b
			}
			b := connect()
			t.Cleanup(func() { deleteStreams(b) })
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			// Round trip with CloudEvents attributes; a re-publish of the same id is dropped.
			at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
			for _, id := range []string{"m1", "m1", "m2"} {
				if err := b.Publish(ctx, "task.alpha", &bus.Message{ID: id, Type: "dev.lethe.test.v1", Source: "test", Time: at, Key: "k", Data: []byte(id)}); err != nil {
					t.Fatal(err)
				}
			}
			var mu sync.Mutex
			var got []*bus.Message
			failOnce := true
			cctx, ccancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- b.Consume(cctx, "task.alpha", "g", func(_ context.Context, m *bus.Message) error {
					mu.Lock()
					defer mu.Unlock()
					got = append(got, m)
					if string(m.Data) == "m2" && failOnce {
						failOnce = false
						return errors.New("try again") // redelivered
					}
					if len(got) == 3 {
						ccancel()
					}
					return nil
				})
			}()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Fatalf("got %d deliveries, want m1, m2 (nacked) and m2 again", len(got))
			}
			m := got[0]
			if m.ID != "m1" || m.Type != "dev.lethe.test.v1" || m.Source != "test" || !m.Time.Equal(at) || m.Key != "k" || m.Delivery != 1 {
				t.Fatalf("first message: %+v", m)
			}
			if string(got[2].Data) != "m2" || got[2].Delivery != 2 {
				t.Fatalf("redelivery: %+v", got[2])
			}

			// A permanent error drops the message; the group resumes after it
			// on a new connection (a restarted consumer).
			if err := b.Publish(ctx, "task.alpha", &bus.Message{ID: "poison", Type: "x", Data: []byte("poison")}); err != nil {
				t.Fatal(err)
			}
			if err := b.Publish(ctx, "task.alpha", &bus.Message{ID: "m3", Type: "x", Data: []byte("m3")}); err != nil {
				t.Fatal(err)
			}
			var seen []string
			b2 := connect()
			cctx, ccancel = context.WithCancel(ctx)
			err := b2.Consume(cctx, "task.alpha", "g", func(_ context.Context, m *bus.Message) error {
				seen = append(seen, string(m.Data))
				if string(m.Data) == "poison" {
					return bus.Permanent(errors.New("cannot decode"))
				}
				ccancel()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(seen) != "[poison m3]" {
				t.Fatalf("after restart the group saw %v, want [poison m3]", seen)
			}
			// Nothing handled stays on the broker: task payloads name the subject.
			time.Sleep(100 * time.Millisecond) // acks are asynchronous
			st, err := b.js.Stream(ctx, strings.ToUpper(prefix+"_task"))
			if err != nil {
				t.Fatal(err)
			}
			if n := st.CachedInfo().State.Msgs; n != 0 {
				t.Fatalf("%d handled messages are still in the stream", n)
			}
		})
	}
}

func deleteStreams(b *Bus) {
	for name := range b.streams {
		_ = b.js.DeleteStream(context.Background(), name)
	}
}

func TestBadTopic(t *testing.T) {
	srv, err := StartEmbedded(t.TempDir(), "127.0.0.1", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	b, err := Connect(context.Background(), srv.URL(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, topic := range []string{"", "task", ".x", "x."} {
		if err := b.Publish(context.Background(), topic, &bus.Message{ID: "1"}); !errors.Is(err, bus.ErrBadTopic) {
			t.Errorf("Publish(%q) = %v, want ErrBadTopic", topic, err)
		}
	}
}

// A handler that works longer than the ack wait keeps its message: the
// adapter tells the server it is still in progress, so it is not handed to
// the other, idle member of the group.
func TestLongHandlerNotRedelivered(t *testing.T) {
	srv, err := StartEmbedded(t.TempDir(), "127.0.0.1", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
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

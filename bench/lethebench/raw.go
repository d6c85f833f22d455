package lethebench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/durability"
)

// RawSize is the payload of a raw message: about a signed task or receipt.
const RawSize = 600

// Raw is the bus's own ceiling for the pipeline's traffic: per request one
// task per system and one receipt per task, published with the client's
// best mode (asynchronous, bounded in flight) and consumed with explicit
// acknowledgements, a receipt published only once its task was consumed,
// as a connector does. No Lethe code runs.
type Raw struct {
	Messages     int     `json:"messages"`
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	// CPUSeconds is the process's CPU over the timed run: the bus's own
	// work (server and clients) for the pipeline's messages.
	CPUSeconds float64 `json:"cpu_seconds"`
	// Runs are the events/s of each run, in order, when the ceiling is
	// their median (runRaw); the fields above are the median run's.
	Runs []float64 `json:"runs,omitempty"`
}

// rawNATS runs the ceiling on an embedded NATS server of its own, in dir,
// durable as mode says (the pipeline's server is made the same way).
func rawNATS(ctx context.Context, dir string, mode durability.Mode, requests int, systems []string, progress func(int)) (Raw, error) {
	srv, err := natsbus.StartEmbedded(filepath.Join(dir, "nats"), "127.0.0.1", -1, nil, natsbus.WithDurability(mode))
	if err != nil {
		return Raw{}, err
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		return Raw{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return Raw{}, err
	}
	// The pipeline's streams: file storage, work-queue retention, a
	// stream per kind of message.
	for _, kind := range []string{"task", "receipt"} {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW_" + kind, Subjects: []string{"raw." + kind + ".>"},
			Storage: jetstream.FileStorage, Retention: jetstream.WorkQueuePolicy}); err != nil {
			return Raw{}, err
		}
	}
	payload := make([]byte, RawSize)
	total := requests * len(systems)
	var receipts atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	consume := func(kind, system string, each func(jetstream.Msg)) (jetstream.ConsumeContext, error) {
		c, err := js.CreateOrUpdateConsumer(ctx, "RAW_"+kind, jetstream.ConsumerConfig{Durable: kind + "-" + system,
			FilterSubject: "raw." + kind + "." + system, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			return nil, err
		}
		return c.Consume(each)
	}
	start, cpu := time.Now(), cpuTime()
	for _, sys := range systems {
		// A connector: takes a task, publishes its receipt, acks the task.
		cc, err := consume("task", sys, func(m jetstream.Msg) {
			if publish(ctx, js, "raw.receipt."+sys, payload) == nil {
				_ = m.Ack()
			}
		})
		if err != nil {
			return Raw{}, err
		}
		defer cc.Stop()
		// The orchestrator: takes the receipt.
		rc, err := consume("receipt", sys, func(m jetstream.Msg) {
			_ = m.Ack()
			if n := receipts.Add(1); n == int64(total) {
				once.Do(func() { close(done) })
			} else if n%1000 == 0 && progress != nil {
				progress(int(n) / len(systems))
			}
		})
		if err != nil {
			return Raw{}, err
		}
		defer rc.Stop()
	}
	for i := 0; i < requests; i++ {
		for _, sys := range systems {
			if err := publish(ctx, js, "raw.task."+sys, payload); err != nil {
				return Raw{}, fmt.Errorf("raw publish: %w", err)
			}
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return Raw{}, ctx.Err()
	case <-time.After(10 * time.Minute):
		return Raw{}, fmt.Errorf("raw NATS: %d of %d receipts after 10 minutes", receipts.Load(), total)
	}
	return rawResult(2*total, time.Since(start), cpuTime()-cpu), nil
}

// publish publishes asynchronously, waiting while the client's window of
// messages in flight is full (PublishAsync gives up after a short stall).
func publish(ctx context.Context, js jetstream.JetStream, subject string, payload []byte) error {
	for {
		_, err := js.PublishAsync(subject, payload)
		if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			return err
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// rawKafka runs the ceiling on the Kafka cluster at brokers with kafka-go,
// the pipeline's client: batched writes in flight while consumer groups
// read and commit.
func rawKafka(ctx context.Context, brokers []string, requests int, systems []string, progress func(int)) (Raw, error) {
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic := func(kind, sys string) string { return "raw-" + run + "." + kind + "." + sys }
	conn, err := kafka.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return Raw{}, err
	}
	var topics []kafka.TopicConfig
	for _, sys := range systems {
		for _, kind := range []string{"task", "receipt"} {
			topics = append(topics, kafka.TopicConfig{Topic: topic(kind, sys), NumPartitions: 1, ReplicationFactor: 1})
		}
	}
	err = conn.CreateTopics(topics...)
	conn.Close()
	if err != nil {
		return Raw{}, err
	}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), BatchSize: 500, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll,
		Async: false, AllowAutoTopicCreation: false}
	defer w.Close()
	payload := make([]byte, RawSize)
	total := requests * len(systems)
	var receipts atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(systems)+1)
	read := func(kind, sys string, each func(kafka.Message) error) {
		defer wg.Done()
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: "raw-" + kind + "-" + sys, Topic: topic(kind, sys),
			MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 10 * time.Millisecond, QueueCapacity: 1000})
		defer r.Close()
		for receipts.Load() < int64(total) {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				errs <- err
				return
			}
			if err := each(m); err != nil {
				errs <- err
				return
			}
			if err := r.CommitMessages(ctx, m); err != nil {
				errs <- err
				return
			}
			if kind == "receipt" {
				if n := receipts.Add(1); n >= int64(total) {
					cancel()
				} else if n%1000 == 0 && progress != nil {
					progress(int(n) / len(systems))
				}
			}
		}
	}
	start, cpu := time.Now(), cpuTime()
	for _, sys := range systems {
		wg.Add(2)
		go read("task", sys, func(kafka.Message) error {
			return w.WriteMessages(ctx, kafka.Message{Topic: topic("receipt", sys), Value: payload})
		})
		go read("receipt", sys, func(kafka.Message) error { return nil })
	}
	const batch = 500
	for i := 0; i < requests; i += batch {
		var ms []kafka.Message
		for j := i; j < min(i+batch, requests); j++ {
			for _, sys := range systems {
				ms = append(ms, kafka.Message{Topic: topic("task", sys), Value: payload})
			}
		}
		if err := w.WriteMessages(ctx, ms...); err != nil {
			return Raw{}, fmt.Errorf("raw write: %w", err)
		}
	}
	wg.Wait()
	if n := receipts.Load(); n < int64(total) {
		select {
		case err := <-errs:
			return Raw{}, fmt.Errorf("raw Kafka: %d of %d receipts: %w", n, total, err)
		default:
			return Raw{}, fmt.Errorf("raw Kafka: %d of %d receipts", n, total)
		}
	}
	return rawResult(2*total, time.Since(start), cpuTime()-cpu), nil
}

func rawResult(messages int, d, cpu time.Duration) Raw {
	return Raw{Messages: messages, Seconds: d.Seconds(), EventsPerSec: float64(messages) / d.Seconds(), CPUSeconds: cpu.Seconds()}
}

// tempDir is a fresh folder under the bench's work folder.
func tempDir(root, name string) (string, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", err
	}
	return os.MkdirTemp(root, name+"-")
}

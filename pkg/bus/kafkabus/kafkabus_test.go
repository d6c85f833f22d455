package kafkabus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/bustest"
	"github.com/lethe-dev/lethe/pkg/tlstest"
)

// features are Kafka's, as kafka-go gives them: no de-duplication, every
// group gets every message, a failed message is retried in place, and the
// delivery count is the consumer's own.
var features = bustest.Features{
	Dedupe:                 false,
	MultipleGroups:         true,
	PerMessageNack:         false,
	BrokerCountsDeliveries: false,
	RetryDelay:             250 * time.Millisecond,
	AckTimeout:             0, // a closed consumer leaves its group: its partitions move at once
}

func testConfig(prefix string) Config {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return Config{
		Prefix:            prefix,
		Partitions:        3,
		RetryDelay:        features.RetryDelay,
		HeartbeatInterval: 200 * time.Millisecond,
		SessionTimeout:    6 * time.Second, // the smallest a broker allows by default
		RebalanceTimeout:  5 * time.Second,
		JoinGroupBackoff:  100 * time.Millisecond,
		MaxWait:           200 * time.Millisecond,
		MetadataTTL:       500 * time.Millisecond, // find moved leaders sooner
		ConnectTimeout:    10 * time.Second,
		Name:              "lethe-bustest",
		Logger:            logger,
	}
}

// prefix is a run's own, so that a shared cluster is fine.
func prefix() string { return "t" + strconv.FormatInt(time.Now().UnixNano(), 36) }

func connect(t *testing.T, brokers []string, cfg Config) *Bus {
	t.Helper()
	b, err := Connect(context.Background(), brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// startKfake starts franz-go's in-process Kafka on port (0 picks one) with
// its state under dir, so that a cluster started again on the same dir and
// port is the same cluster restarted.
func startKfake(t *testing.T, dir string, port int, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append(opts, kfake.DataDir(dir))
	if port != 0 {
		opts = append(opts, kfake.Ports(port))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func portOf(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func TestBus(t *testing.T) {
	t.Run("kfake", func(t *testing.T) {
		dir := t.TempDir()
		c := startKfake(t, dir, 0)
		t.Cleanup(func() { c.Close() })
		brokers := c.ListenAddrs()
		f := features
		f.BrokerGoroutines = []string{"franz-go/pkg/kfake."}
		f.RestartBroker = func(t *testing.T) {
			c.Close() // saves its state to dir
			c = startKfake(t, dir, portOf(t, brokers[0]))
		}
		cfg := testConfig(prefix())
		t.Cleanup(func() { deleteTopics(t, brokers, cfg.Prefix) })
		bustest.Run(t, f, func(t *testing.T) bus.Bus { return connect(t, brokers, cfg) })
	})
	t.Run("external", func(t *testing.T) {
		brokers := externalBrokers(t)
		cfg := testConfig(prefix())
		t.Cleanup(func() { deleteTopics(t, brokers, cfg.Prefix) })
		bustest.Run(t, features, func(t *testing.T) bus.Bus { return connect(t, brokers, cfg) })
	})
}

// deleteTopics removes a run's topics from a shared cluster.
func deleteTopics(t *testing.T, brokers []string, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Errorf("list topics: %v", err)
		return
	}
	var names []string
	for _, topic := range md.Topics {
		if strings.HasPrefix(topic.Name, prefix+".") {
			names = append(names, topic.Name)
		}
	}
	if len(names) == 0 {
		t.Errorf("no topic starts with %s.", prefix)
		return
	}
	resp, err := cl.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
	if err == nil {
		err = errors.Join(slices.Collect(maps.Values(resp.Errors))...)
	}
	if err != nil {
		t.Errorf("delete topics: %v", err)
	}
}

func externalBrokers(t *testing.T) []string {
	env := os.Getenv("LETHE_TEST_KAFKA_BROKERS")
	if env == "" {
		t.Skip("LETHE_TEST_KAFKA_BROKERS is not set: no external Kafka cluster to test against")
	}
	return strings.Split(env, ",")
}

// What travels on Kafka is what the package doc promises, for other Kafka
// clients to read: the topic "<prefix>.<topic>", the key, the CloudEvents
// headers, and one partition for a key.
func TestWireFormat(t *testing.T) {
	c := startKfake(t, t.TempDir(), 0)
	defer c.Close()
	cfg := testConfig(prefix())
	b := connect(t, c.ListenAddrs(), cfg)
	ctx := context.Background()
	at := time.Date(2026, 11, 23, 10, 0, 0, 5, time.UTC)
	for i := range 6 {
		m := &bus.Message{ID: fmt.Sprintf("id-%d", i), Type: "dev.lethe.test.v1", Source: "test", Time: at, Key: "request-7", Data: []byte{byte(i)}}
		if err := b.Publish(ctx, "task.wire", m); err != nil {
			t.Fatal(err)
		}
	}
	topic := cfg.Prefix + ".task.wire"
	var got []kafka.Message
	for p := range cfg.Partitions {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.ListenAddrs(), Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		for {
			m, err := r.ReadMessage(rctx)
			if err != nil {
				break
			}
			got = append(got, m)
		}
		cancel()
		r.Close()
	}
	if len(got) != 6 {
		t.Fatalf("read %d messages from %s, want 6", len(got), topic)
	}
	for i, m := range got {
		if m.Partition != got[0].Partition {
			t.Errorf("one key on partitions %d and %d", got[0].Partition, m.Partition)
		}
		if string(m.Key) != "request-7" || m.Value[0] != byte(i) {
			t.Errorf("message %d: key %q value %v", i, m.Key, m.Value)
		}
		h := map[string]string{}
		for _, kv := range m.Headers {
			h[kv.Key] = string(kv.Value)
		}
		want := map[string]string{"ce-id": fmt.Sprintf("id-%d", i), "ce-type": "dev.lethe.test.v1", "ce-source": "test", "ce-time": "2026-11-23T10:00:00.000000005Z", "lethe-key": "request-7"}
		if fmt.Sprint(h) != fmt.Sprint(want) {
			t.Errorf("message %d headers %v, want %v", i, h, want)
		}
	}
}

// Partition leaders move between brokers while a group consumes and a
// publisher publishes: kafka-go follows them, nothing is lost.
func TestLeadershipChange(t *testing.T) {
	c := startKfake(t, t.TempDir(), 0, kfake.NumBrokers(3))
	defer c.Close()
	cfg := testConfig(prefix())
	b := connect(t, c.ListenAddrs(), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	seen := map[string]bool{}
	done := make(chan error, 1)
	cctx, stop := context.WithCancel(ctx)
	go func() {
		done <- b.Consume(cctx, "task.leaders", "g", func(_ context.Context, m *bus.Message) error {
			mu.Lock()
			defer mu.Unlock()
			seen[m.ID] = true
			return nil
		})
	}()
	var ids []string
	topic := cfg.Prefix + ".task.leaders"
	for i := range 60 {
		if i%20 == 10 {
			c.RehashCoordinators() // the groups' coordinators move too
			for p := range int32(cfg.Partitions) {
				node := (c.LeaderFor(topic, p) + 1) % 3
				if err := c.MoveTopicPartition(topic, p, node); err != nil {
					t.Fatalf("move partition %d to broker %d: %v", p, node, err)
				}
			}
		}
		m := &bus.Message{ID: fmt.Sprintf("m-%02d", i), Type: "x", Key: fmt.Sprintf("request-%d", i%5)}
		ids = append(ids, m.ID)
		// The first write after a move meets a broker that no longer
		// leads; kafka-go retries until its metadata shows the new leader.
		if err := b.Publish(ctx, "task.leaders", m); err != nil {
			t.Fatalf("publish %s: %v", m.ID, err)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == len(ids) {
			break
		}
		if time.Now().After(deadline) {
			mu.Lock()
			var missing []string
			for _, id := range ids {
				if !seen[id] {
					missing = append(missing, id)
				}
			}
			mu.Unlock()
			t.Fatalf("missing after the leaders moved: %v", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"prefix with a space", Config{Prefix: "le the"}, false},
		{"prefix with a slash", Config{Prefix: "a/b"}, false},
		{"no partitions", Config{Partitions: -1}, false},
		{"replication below -1", Config{ReplicationFactor: -2}, false},
		{"heartbeat not shorter than session", Config{HeartbeatInterval: time.Minute, SessionTimeout: time.Minute}, false},
		{"explicit", Config{Prefix: "acme.lethe", Partitions: 12, ReplicationFactor: 3}, true},
		{"retention of a minute", Config{Retention: time.Minute}, true},
		{"retention below a minute", Config{Retention: 59 * time.Second}, false},
		{"negative retention", Config{Retention: -time.Hour}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.setDefaults()
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestConnectNoBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = Connect(context.Background(), []string{addr}, Config{ConnectTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Connect to a closed port = %v, want an error naming the broker", err)
	}
	if _, err := Connect(context.Background(), nil, Config{}); err == nil {
		t.Fatal("Connect without brokers succeeded")
	}
}

// roundTrip publishes a message and consumes it back.
func roundTrip(t *testing.T, b *Bus, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	want := &bus.Message{ID: "rt-1", Type: "dev.lethe.test.v1", Source: "test", Key: "request-1", Data: []byte("sealed")}
	if err := b.Publish(ctx, topic, want); err != nil {
		t.Fatalf("publish: %v", err)
	}
	got := make(chan *bus.Message, 1)
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(cctx, topic, "g", func(_ context.Context, m *bus.Message) error {
			select {
			case got <- m:
			default:
			}
			return nil
		})
	}()
	select {
	case m := <-got:
		if m.ID != want.ID || m.Key != want.Key || string(m.Data) != string(want.Data) {
			t.Errorf("consumed %+v, want %+v", m, want)
		}
	case <-ctx.Done():
		t.Fatal("the published message was not consumed")
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("consume: %v", err)
	}
}

// saslFor returns kafka-go's mechanism for a kfake method.
func saslFor(t *testing.T, method, user, pass string) sasl.Mechanism {
	t.Helper()
	switch method {
	case "PLAIN":
		return plain.Mechanism{Username: user, Password: pass}
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		algo := scram.SHA256
		if method == "SCRAM-SHA-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, user, pass)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Fatalf("no mechanism %s", method)
	return nil
}

var saslMethods = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// With SASL, every connection authenticates: the producer's, the
// consumers' and the one that creates topics (kfake refuses any request
// on a connection that has not).
func TestSASL(t *testing.T) {
	for _, method := range saslMethods {
		t.Run(method, func(t *testing.T) {
			c := startKfake(t, t.TempDir(), 0, kfake.NumBrokers(2), kfake.EnableSASL(), kfake.Superuser(method, "lethe", "s3cret-pass"))
			defer c.Close()
			cfg := testConfig(prefix())
			cfg.SASL = saslFor(t, method, "lethe", "s3cret-pass")
			roundTrip(t, connect(t, c.ListenAddrs(), cfg), "task.sasl")
		})
	}
}

// A password the broker refuses ends Connect at once (not after its
// timeout, here a minute), saying so, without the password.
func TestSASLWrongPassword(t *testing.T) {
	for _, method := range saslMethods {
		t.Run(method, func(t *testing.T) {
			c := startKfake(t, t.TempDir(), 0, kfake.EnableSASL(), kfake.Superuser(method, "lethe", "s3cret-pass"))
			defer c.Close()
			for _, who := range []struct{ user, pass string }{{"lethe", "wr0ng-pass"}, {"nobody", "wr0ng-pass"}} {
				cfg := testConfig(prefix())
				cfg.ConnectTimeout = time.Minute
				cfg.SASL = saslFor(t, method, who.user, who.pass)
				start := time.Now()
				b, err := Connect(context.Background(), c.ListenAddrs(), cfg)
				if err == nil {
					b.Close()
					t.Fatalf("Connect as %s with a wrong password succeeded", who.user)
				}
				t.Log(err)
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("Connect took %v to give up: it retried what cannot succeed", took)
				}
				if !strings.HasPrefix(err.Error(), "kafkabus: SASL authentication failed: ") || !strings.Contains(err.Error(), method) {
					t.Errorf("Connect = %q, want it to start with %q and name %s", err, "kafkabus: SASL authentication failed: ", method)
				}
				if !errors.Is(err, kafka.SASLAuthenticationFailed) {
					t.Errorf("Connect = %q, want it to wrap kafka.SASLAuthenticationFailed", err)
				}
				if strings.Contains(err.Error(), who.pass) {
					t.Errorf("Connect = %q: the error shows the password", err)
				}
			}
		})
	}
}

// A client without credentials meets a broker that wants them: Connect
// gives up at its timeout and hints at what is missing.
func TestNoSASLForSASLBroker(t *testing.T) {
	c := startKfake(t, t.TempDir(), 0, kfake.EnableSASL(), kfake.Superuser("PLAIN", "lethe", "s3cret-pass"))
	defer c.Close()
	cfg := testConfig(prefix())
	cfg.ConnectTimeout = time.Second
	_, err := Connect(context.Background(), c.ListenAddrs(), cfg)
	if err == nil {
		t.Fatal("Connect without credentials to a SASL broker succeeded")
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "does it want TLS or SASL?") {
		t.Errorf("Connect = %q, want a hint at TLS or SASL", err)
	}
}

// The topics the adapter creates keep messages for Config.Retention and
// then delete them: sealed data must not stay for the broker's default.
func TestTopicRetention(t *testing.T) {
	c := startKfake(t, t.TempDir(), 0)
	defer c.Close()
	ctx := context.Background()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Transport: transport}
	for _, tc := range []struct {
		name      string
		retention time.Duration
		want      string
	}{
		{"default", 0, "604800000"}, // 7 days
		{"36h", 36 * time.Hour, "129600000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(prefix())
			cfg.Retention = tc.retention
			b := connect(t, c.ListenAddrs(), cfg)
			if err := b.Publish(ctx, "task.retention", &bus.Message{ID: "1", Type: "x"}); err != nil {
				t.Fatal(err)
			}
			topic := cfg.Prefix + ".task.retention"
			want := map[string]string{"retention.ms": tc.want, "cleanup.policy": "delete"}
			// What the broker tells any client.
			resp, err := cl.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
				ResourceType: kafka.ResourceTypeTopic,
				ResourceName: topic,
				ConfigNames:  []string{"retention.ms", "cleanup.policy"},
			}}})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, r := range resp.Resources {
				if r.Error != nil {
					t.Fatal(r.Error)
				}
				for _, e := range r.ConfigEntries {
					got[e.ConfigName] = e.ConfigValue
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("DescribeConfigs(%s) = %v, want %v", topic, got, want)
			}
			// What the topic was created with, not a broker default.
			info := c.TopicInfo(topic)
			if info == nil {
				t.Fatalf("kfake has no topic %s", topic)
			}
			for k, v := range want {
				if p := info.Configs[k]; p == nil || *p != v {
					t.Errorf("topic %s created with %s = %v, want %s", topic, k, p, v)
				}
			}
		})
	}
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate.
type testPKI struct {
	pool           *x509.CertPool
	server, client tls.Certificate
}

func newTestPKI(t *testing.T, name string) testPKI {
	t.Helper()
	p := tlstest.New(t, name)
	return testPKI{pool: p.Pool, server: p.Server, client: p.Client}
}

// kfake serves TLS, asking for a client certificate: the bus publishes and
// consumes through it, with SCRAM on top; a broker certificate from
// another CA, a missing client certificate or a plaintext broker end
// Connect at once.
func TestTLS(t *testing.T) {
	pki := newTestPKI(t, "lethe test")
	serverTLS := &tls.Config{
		Certificates: []tls.Certificate{pki.server},
		ClientCAs:    pki.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	c := startKfake(t, t.TempDir(), 0, kfake.NumBrokers(2), kfake.TLS(serverTLS), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "lethe", "s3cret-pass"))
	defer c.Close()
	brokers := c.ListenAddrs()
	clientTLS := &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}, MinVersion: tls.VersionTLS12}

	t.Run("round trip", func(t *testing.T) {
		cfg := testConfig(prefix())
		cfg.TLS = clientTLS
		cfg.SASL = saslFor(t, "SCRAM-SHA-512", "lethe", "s3cret-pass")
		roundTrip(t, connect(t, brokers, cfg), "task.tls")
	})
	t.Run("round trip without SASL", func(t *testing.T) {
		c := startKfake(t, t.TempDir(), 0, kfake.TLS(serverTLS))
		defer c.Close()
		cfg := testConfig(prefix())
		cfg.TLS = clientTLS
		roundTrip(t, connect(t, c.ListenAddrs(), cfg), "task.tls")
	})

	other := newTestPKI(t, "other")
	plainBroker := startKfake(t, t.TempDir(), 0)
	defer plainBroker.Close()
	for _, tc := range []struct {
		name    string
		brokers []string
		tls     *tls.Config
		says    string
	}{
		{"unknown CA", brokers, &tls.Config{RootCAs: other.pool, Certificates: []tls.Certificate{pki.client}}, "kafkabus: TLS handshake with "},
		{"no client certificate", brokers, &tls.Config{RootCAs: pki.pool}, "kafkabus: TLS handshake with "},
		{"client certificate of another CA", brokers, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{other.client}}, "kafkabus: TLS handshake with "},
		// kfake, unlike Kafka, waits for the rest of a "request" as long
		// as a ClientHello says (Kafka closes the connection): Connect
		// gives up at its timeout, with a hint.
		{"plaintext broker", plainBroker.ListenAddrs()[:1], clientTLS, "(does the broker speak TLS on that port?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(prefix())
			cfg.ConnectTimeout = 2 * time.Second
			cfg.TLS = tc.tls
			cfg.SASL = saslFor(t, "SCRAM-SHA-512", "lethe", "s3cret-pass")
			start := time.Now()
			b, err := Connect(context.Background(), tc.brokers, cfg)
			if err == nil {
				b.Close()
				t.Fatal("Connect succeeded")
			}
			t.Log(err)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Connect took %v to give up: it retried what cannot succeed", took)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Connect = %q, want it to say %q", err, tc.says)
			}
		})
	}
}

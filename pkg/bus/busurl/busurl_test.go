package busurl

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/kafkabus"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
)

// A URL that cannot be right is refused at once, saying what is wrong, and
// never repeating a password.
func TestBadURL(t *testing.T) {
	for _, tc := range []struct {
		name, url, says string
	}{
		{"empty", "", "no bus URL given"},
		{"blank", "   ", "no bus URL given"},
		{"no scheme", "localhost:4222", "has no scheme"},
		{"no scheme with credentials", "user:s3cret@localhost:4222", "has no scheme"},
		{"unknown scheme", "amqp://localhost:5672", `unknown scheme "amqp"`},
		{"no host", "nats://", `"nats://" has no host`},
		{"port without host", "nats://:4222", "no host"},
		{"empty server in a list", "kafka://a:9092,,b:9092", "server 2 of 3 is empty"},
		{"port not a number", "nats://localhost:abc", "invalid port"},
		{"port too large", "kafka://localhost:99999", `bad port "99999"`},
		{"port zero", "kafka://localhost:0", `bad port "0"`},
		{"mixed schemes", "nats://a:4222,kafka://b:9092", `server 2 of 2 has scheme "kafka"`},
		{"path", "nats://localhost:4222/lethe", "no path or query"},
		{"query", "kafka://localhost:9092?tls=1", "no path or query"},
		{"kafka credentials", "kafka://user:s3cret@localhost:9092", "credentials in a kafka URL are not supported"},
		{"bad port with credentials", "nats://user:s3cret@localhost:99999", `bad port "99999"`},
		{"second server bad, with credentials", "nats://u:s3cret@a:4222,nats://u:s3cret@b:x", "server 2 of 2"},
		{"bad escape in credentials", "nats://user:s3cret%zz@localhost:4222", "credentials are not valid URL encoding"},
		{"bad escape in the host", "nats://user:s3cret@local%zzhost:4222", "invalid URL escape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			b, err := Dial(ctx, tc.url, Options{})
			if err == nil {
				b.Close()
				t.Fatalf("Dial(%q) succeeded", tc.url)
			}
			if ctx.Err() != nil {
				t.Fatalf("Dial(%q) tried to connect before refusing the URL: %v", tc.url, err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Dial(%q) = %q, want it to say %q", tc.url, err, tc.says)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "%zz@") {
				t.Errorf("Dial(%q) = %q: the error shows the password", tc.url, err)
			}
		})
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Good URLs reach the broker they name, with its adapter.
func TestDial(t *testing.T) {
	srv, err := natsbus.StartEmbedded(t.TempDir(), "127.0.0.1", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	natsHost := strings.TrimPrefix(srv.URL(), "nats://")
	kafka, err := kfake.NewCluster(kfake.NumBrokers(2))
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	brokers := kafka.ListenAddrs()
	for _, tc := range []struct {
		name, url string
		kafka     bool
	}{
		{"nats", srv.URL(), false},
		{"nats, scheme in capitals", "NATS://" + natsHost, false},
		{"nats list", "nats://" + natsHost + "," + natsHost, false},
		{"nats list, scheme repeated", srv.URL() + ", " + srv.URL(), false},
		{"nats with credentials", "nats://lethe:s3cret@" + natsHost, false}, // the server has no auth: accepted
		{"kafka", "kafka://" + brokers[0], true},
		{"kafka list", "kafka://" + strings.Join(brokers, ","), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			b, err := Dial(ctx, tc.url, Options{Name: "busurl-test", Prefix: "busurl", Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			switch b.(type) {
			case *kafkabus.Bus:
				if !tc.kafka {
					t.Fatalf("Dial(%q) made a Kafka bus", tc.url)
				}
			case *natsbus.Bus:
				if tc.kafka {
					t.Fatalf("Dial(%q) made a NATS bus", tc.url)
				}
			default:
				t.Fatalf("Dial(%q) made a %T", tc.url, b)
			}
			if err := b.Publish(ctx, "task.busurl", &bus.Message{ID: tc.name, Type: "x"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A broker that does not answer is an error once ctx ends; the password
// in the URL is not in it.
func TestDialUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, url := range []string{"nats://lethe:s3cret@" + addr + ",nats://tok3n@" + addr, "kafka://" + addr} {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := Dial(ctx, url, Options{Logger: quiet()})
		cancel()
		if err == nil {
			t.Fatalf("Dial(%q) succeeded", url)
		}
		t.Log(err)
		if !strings.Contains(err.Error(), addr) {
			t.Errorf("Dial(%q) = %q, want it to name the server", url, err)
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "tok3n") {
			t.Errorf("Dial(%q) = %q: the error shows credentials", url, err)
		}
	}
}

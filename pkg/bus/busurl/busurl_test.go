package busurl

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/kafkabus"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/tlstest"
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
		{"nats unknown parameter", "nats://localhost:4222?foo=1", `unknown nats URL parameter "foo"`},
		{"kafka credentials without sasl", "kafka://user:s3cret@localhost:9092", "the kafka URL has credentials but no sasl= parameter"},
		{"bad port with credentials", "nats://user:s3cret@localhost:99999", `bad port "99999"`},
		{"second server bad, with credentials", "nats://u:s3cret@a:4222,nats://u:s3cret@b:x", "server 2 of 2"},
		{"bad escape in credentials", "nats://user:s3cret%zz@localhost:4222", "credentials are not valid URL encoding"},
		{"bad escape in the host", "nats://user:s3cret@local%zzhost:4222", "invalid URL escape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := dialRefused(t, tc.url, Options{})
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Dial(%q) = %q, want it to say %q", tc.url, err, tc.says)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "%zz@") {
				t.Errorf("Dial(%q) = %q: the error shows the password", tc.url, err)
			}
		})
	}
}

// dialRefused dials url and returns the error it must fail with, before
// any connection is tried: the URL itself is refused.
func dialRefused(t *testing.T, url string, opts Options) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, err := Dial(ctx, url, opts)
	if err == nil {
		b.Close()
		t.Fatalf("Dial(%q) succeeded", url)
	}
	if ctx.Err() != nil {
		t.Fatalf("Dial(%q) tried to connect before refusing the URL: %v", url, err)
	}
	t.Log(err)
	return err
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Good URLs reach the broker they name, with its adapter.
func TestDial(t *testing.T) {
	srv, err := natsbus.StartEmbedded(t.TempDir(), "127.0.0.1", -1, nil)
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

// pki is a test CA, a server certificate for 127.0.0.1 and a client
// certificate, the CA's and the client's also in PEM files.
type pki struct {
	pool                    *x509.CertPool
	server                  tls.Certificate
	clientDER               []byte
	dir, ca, cert, key, bad string // files; bad holds no PEM
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	tp := tlstest.New(t, "busurl test")
	p := &pki{pool: tp.Pool, server: tp.Server, clientDER: tp.Client.Certificate[0], dir: tp.Dir,
		ca: tp.CAFile, cert: tp.ClientCert, key: tp.ClientKey, bad: filepath.Join(tp.Dir, "bad.pem")}
	if err := os.WriteFile(p.bad, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// noKafkaEnv clears the credentials the environment may give (empty is
// none).
func noKafkaEnv(t *testing.T) {
	t.Setenv(envKafkaUser, "")
	t.Setenv(envKafkaPassword, "")
}

// A Kafka URL's parameters that cannot work are refused before any
// connection, saying what is wrong and never showing the password.
func TestBadKafkaParams(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		name, url, says string
		env             map[string]string
		secret          string // "s3cret" if empty
	}{
		{"unknown parameter", "kafka://u:s3cret@h:9092?sasl=plain&tls=1&foo=1", `unknown kafka URL parameter "foo": want sasl, tls, tls_ca, tls_cert, tls_key, tls_insecure_skip_verify, retention`, nil, ""},
		{"parameter in capitals", "kafka://h:9092?TLS=1", `unknown kafka URL parameter "TLS"`, nil, ""},
		{"parameter twice", "kafka://h:9092?tls=1&tls=1", "tls is given 2 times", nil, ""},
		{"parameter without value", "kafka://h:9092?tls_ca=", "tls_ca has no value", nil, ""},
		{"bad escape in a parameter", "kafka://u:s3cret@h:9092?tls_ca=%zz", "invalid URL escape", nil, ""},
		{"unknown mechanism", "kafka://u:s3cret@h:9092?sasl=gssapi", "sasl=gssapi: want plain, scram-sha-256 or scram-sha-512", nil, ""},
		{"sasl without credentials", "kafka://h:9092?sasl=plain", "sasl=plain needs a user and a password", nil, ""},
		{"sasl without password", "kafka://lethe@h:9092?sasl=scram-sha-256", "sasl=scram-sha-256 needs a user and a password", nil, ""},
		{"sasl with user only in env", "kafka://h:9092?sasl=scram-sha-512", "needs a user and a password", map[string]string{envKafkaUser: "lethe"}, ""},
		{"credentials in env without sasl", "kafka://h:9092", "LETHE_KAFKA_USER or LETHE_KAFKA_PASSWORD is set but the kafka URL has no sasl= parameter", map[string]string{envKafkaUser: "lethe", envKafkaPassword: "s3cret"}, ""},
		{"a '?' in the password, no sasl", "kafka://u:s3c?ret@h:9092", "has credentials but no sasl=", nil, "ret"},
		{"different credentials per server", "kafka://u:s3cret@a:9092,kafka://v:s3cret@b:9092?sasl=plain", "server 1 of 2 and server 2 of 2 have different credentials", nil, ""},
		{"password SCRAM refuses", "kafka://u:s3cret%07@h:9092?sasl=scram-sha-256", "sasl=scram-sha-256: the user or password has characters SCRAM refuses", nil, ""},
		{"tls not a boolean", "kafka://h:9092?tls=yes", "tls=yes: want 1 or 0", nil, ""},
		{"parameters before the last server", "kafka://a:9092?tls=1,b:9092", "tls=1,b:9092: want 1 or 0", nil, ""},
		{"tls=0 with a CA", "kafka://h:9092?tls=0&tls_ca=" + p.ca, "tls=0 and tls_ca contradict each other", nil, ""},
		{"tls=0 with skip verify", "kafka://h:9092?tls=0&tls_insecure_skip_verify=1", "tls=0 and tls_insecure_skip_verify=1 contradict", nil, ""},
		{"skip verify not a boolean", "kafka://h:9092?tls_insecure_skip_verify=sure", "tls_insecure_skip_verify=sure: want 1 or 0", nil, ""},
		{"CA file missing", "kafka://u:s3cret@h:9092?sasl=plain&tls_ca=" + p.dir + "/none.pem", "tls_ca: open " + p.dir + "/none.pem", nil, ""},
		{"CA file without PEM", "kafka://h:9092?tls_ca=" + p.bad, "tls_ca: no PEM certificate in " + p.bad, nil, ""},
		{"certificate without key", "kafka://h:9092?tls_cert=" + p.cert, "tls_cert needs tls_key", nil, ""},
		{"key without certificate", "kafka://h:9092?tls_key=" + p.key, "tls_key needs tls_cert", nil, ""},
		{"key that is no key", "kafka://h:9092?tls_cert=" + p.cert + "&tls_key=" + p.bad, "tls_cert " + p.cert + ", tls_key " + p.bad + ": tls:", nil, ""},
		{"retention in days", "kafka://h:9092?retention=7d", "retention=7d: want a positive duration such as 168h", nil, ""},
		{"negative retention", "kafka://h:9092?retention=-1h", "retention=-1h: want a positive duration", nil, ""},
		{"retention too short", "kafka://h:9092?retention=30s", "retention 30s must be at least 1m0s", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noKafkaEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			secret := tc.secret
			if secret == "" {
				secret = "s3cret"
			}
			err := dialRefused(t, tc.url, Options{Logger: quiet()})
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Dial(%q) = %q, want it to say %q", tc.url, err, tc.says)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("Dial(%q) = %q: the error shows the password", tc.url, err)
			}
		})
	}
}

// What a good Kafka URL's parameters make of the adapter's configuration.
func TestParseKafka(t *testing.T) {
	p := newPKI(t)
	type want struct {
		servers   string
		tls       bool
		ca        bool // RootCAs is the test CA's (else the system's)
		cert      bool // the client certificate is loaded
		insecure  bool
		sasl      string // mechanism name
		user      string // for PLAIN
		password  string // for PLAIN
		retention time.Duration
	}
	for _, tc := range []struct {
		name, url string
		env       map[string]string
		want      want
	}{
		{"no parameters", "kafka://h1,h2:9093", nil, want{servers: "h1:9092,h2:9093"}},
		{"empty query", "kafka://h:9092?", nil, want{servers: "h:9092"}},
		{"tls", "kafka://h:9092?tls=1", nil, want{servers: "h:9092", tls: true}},
		{"tls=true", "kafka://h:9092/?tls=true", nil, want{servers: "h:9092", tls: true}},
		{"tls=0", "kafka://h:9092?tls=0", nil, want{servers: "h:9092"}},
		{"CA implies tls", "kafka://h:9092?tls_ca=" + p.ca, nil, want{servers: "h:9092", tls: true, ca: true}},
		{"CA and client certificate", "kafka://h:9092?tls=1&tls_ca=" + p.ca + "&tls_cert=" + p.cert + "&tls_key=" + p.key, nil, want{servers: "h:9092", tls: true, ca: true, cert: true}},
		{"escaped path", "kafka://h:9092?tls_ca=" + url.QueryEscape(p.ca), nil, want{servers: "h:9092", tls: true, ca: true}},
		{"skip verify", "kafka://h:9092?tls_insecure_skip_verify=1", nil, want{servers: "h:9092", tls: true, insecure: true}},
		{"retention", "kafka://h:9092?retention=36h", nil, want{servers: "h:9092", retention: 36 * time.Hour}},
		{"plain", "kafka://lethe:s3cret@h1:9092,h2:9092?sasl=plain", nil, want{servers: "h1:9092,h2:9092", sasl: "PLAIN", user: "lethe", password: "s3cret"}},
		{"mechanism in capitals", "kafka://lethe:s3cret@h:9092?sasl=PLAIN", nil, want{servers: "h:9092", sasl: "PLAIN", user: "lethe", password: "s3cret"}},
		{"same credentials twice", "kafka://lethe:s3cret@h1:9092,kafka://lethe:s3cret@h2:9092?sasl=plain", nil, want{servers: "h1:9092,h2:9092", sasl: "PLAIN", user: "lethe", password: "s3cret"}},
		{"escaped password", "kafka://lethe:p%40ss%2Cw%3Frd@h:9092?sasl=plain", nil, want{servers: "h:9092", sasl: "PLAIN", user: "lethe", password: "p@ss,w?rd"}},
		{"'@' and '?' in the password as they are", "kafka://lethe:p@ss?w=rd@h:9092?sasl=plain&tls=1", nil, want{servers: "h:9092", tls: true, sasl: "PLAIN", user: "lethe", password: "p@ss?w=rd"}},
		{"credentials from env", "kafka://h:9092?sasl=plain", map[string]string{envKafkaUser: "env-user", envKafkaPassword: "env-s3cret"}, want{servers: "h:9092", sasl: "PLAIN", user: "env-user", password: "env-s3cret"}},
		{"user in the URL, password from env", "kafka://lethe@h:9092?sasl=plain", map[string]string{envKafkaUser: "env-user", envKafkaPassword: "env-s3cret"}, want{servers: "h:9092", sasl: "PLAIN", user: "lethe", password: "env-s3cret"}},
		{"URL before env", "kafka://lethe:s3cret@h:9092?sasl=plain", map[string]string{envKafkaUser: "env-user", envKafkaPassword: "env-s3cret"}, want{servers: "h:9092", sasl: "PLAIN", user: "lethe", password: "s3cret"}},
		{"scram-sha-256", "kafka://lethe:s3cret@h:9092?sasl=scram-sha-256", nil, want{servers: "h:9092", sasl: "SCRAM-SHA-256"}},
		{"scram-sha-512 with everything", "kafka://lethe:s3cret@h:9092?sasl=scram-sha-512&tls_ca=" + p.ca + "&tls_cert=" + p.cert + "&tls_key=" + p.key + "&retention=1h", nil, want{servers: "h:9092", tls: true, ca: true, cert: true, sasl: "SCRAM-SHA-512", retention: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noKafkaEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			tg, err := parse(tc.url, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var hosts []string
			for _, u := range tg.servers {
				if u.User != nil {
					t.Errorf("server %s keeps its credentials", u.Host)
				}
				hosts = append(hosts, u.Host)
			}
			w, k := tc.want, tg.kafka
			if got := strings.Join(hosts, ","); got != w.servers {
				t.Errorf("servers %s, want %s", got, w.servers)
			}
			if k.retention != w.retention {
				t.Errorf("retention %v, want %v", k.retention, w.retention)
			}
			if (k.tls != nil) != w.tls {
				t.Fatalf("TLS %v, want %v", k.tls != nil, w.tls)
			}
			if k.tls != nil {
				if k.tls.MinVersion != tls.VersionTLS12 {
					t.Errorf("TLS MinVersion %x, want TLS 1.2", k.tls.MinVersion)
				}
				if k.tls.InsecureSkipVerify != w.insecure {
					t.Errorf("InsecureSkipVerify %v, want %v", k.tls.InsecureSkipVerify, w.insecure)
				}
				if w.ca != (k.tls.RootCAs != nil) || w.ca && !k.tls.RootCAs.Equal(p.pool) {
					t.Errorf("RootCAs are not the test CA's (want %v)", w.ca)
				}
				switch {
				case !w.cert && len(k.tls.Certificates) != 0:
					t.Errorf("%d client certificates, want none", len(k.tls.Certificates))
				case w.cert && (len(k.tls.Certificates) != 1 || !bytes.Equal(k.tls.Certificates[0].Certificate[0], p.clientDER) || k.tls.Certificates[0].PrivateKey == nil):
					t.Errorf("the client certificate and key are not loaded")
				}
			}
			switch {
			case w.sasl == "" && k.sasl != nil:
				t.Errorf("SASL %s, want none", k.sasl.Name())
			case w.sasl != "" && (k.sasl == nil || k.sasl.Name() != w.sasl):
				t.Errorf("SASL %v, want %s", k.sasl, w.sasl)
			case w.sasl == "PLAIN":
				if m := k.sasl.(plain.Mechanism); m.Username != w.user || m.Password != w.password {
					t.Errorf("PLAIN as %q/%q, want %q/%q", m.Username, m.Password, w.user, w.password)
				}
			}
		})
	}
}

// startSecureKafka starts a kfake cluster serving TLS (with a client certificate) and
// SASL.
func startSecureKafka(t *testing.T, p *pki, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append(opts, kfake.NumBrokers(2), kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientCAs:    p.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}))
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// A Kafka URL with TLS, a client certificate and SASL reaches a broker
// that wants all three, with the password in the URL or in the
// environment, and the topics it creates get the retention it says.
func TestDialKafkaSecure(t *testing.T) {
	p := newPKI(t)
	const password = "p@ss?w,rd" // ',' must be escaped in a URL, '@' and '?' need not
	tlsParams := "tls_ca=" + p.ca + "&tls_cert=" + p.cert + "&tls_key=" + p.key
	for _, method := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(method, func(t *testing.T) {
			c := startSecureKafka(t, p, kfake.EnableSASL(), kfake.Superuser(method, "lethe", password))
			hosts := strings.Join(c.ListenAddrs(), ",")
			mech := strings.ToLower(method)
			for _, tc := range []struct {
				name, url string
				env       map[string]string
				retention string
			}{
				{"password in the URL", "kafka://lethe:p@ss?w%2Crd@" + hosts + "?sasl=" + mech + "&" + tlsParams + "&retention=36h", nil, "129600000"},
				{"password in env", "kafka://lethe@" + hosts + "?" + tlsParams + "&sasl=" + mech, map[string]string{envKafkaPassword: password}, "604800000"},
				{"credentials in env", "kafka://" + hosts + "?" + tlsParams + "&sasl=" + mech, map[string]string{envKafkaUser: "lethe", envKafkaPassword: password}, "604800000"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					noKafkaEnv(t)
					for k, v := range tc.env {
						t.Setenv(k, v)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					prefix := "busurl" + strconv.FormatInt(time.Now().UnixNano(), 36)
					b, err := Dial(ctx, tc.url, Options{Name: "busurl-test", Prefix: prefix, Logger: quiet()})
					if err != nil {
						t.Fatal(err)
					}
					defer b.Close()
					if err := b.Publish(ctx, "task.secure", &bus.Message{ID: "1", Type: "x"}); err != nil {
						t.Fatal(err)
					}
					got := make(chan string, 1)
					cctx, stop := context.WithCancel(ctx)
					done := make(chan error, 1)
					go func() {
						done <- b.Consume(cctx, "task.secure", "g", func(_ context.Context, m *bus.Message) error {
							select {
							case got <- m.ID:
							default:
							}
							return nil
						})
					}()
					select {
					case <-got:
					case <-ctx.Done():
						t.Fatal("the message published was not consumed")
					}
					stop()
					if err := <-done; err != nil {
						t.Fatal(err)
					}
					info := c.TopicInfo(prefix + ".task.secure")
					if info == nil {
						t.Fatal("no topic created")
					}
					for k, v := range map[string]string{"retention.ms": tc.retention, "cleanup.policy": "delete"} {
						if got := info.Configs[k]; got == nil || *got != v {
							t.Errorf("topic created with %s = %v, want %s", k, got, v)
						}
					}
				})
			}
			t.Run("wrong password", func(t *testing.T) {
				noKafkaEnv(t)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				b, err := Dial(ctx, "kafka://lethe:wr0ng-s3cret@"+hosts+"?sasl="+mech+"&"+tlsParams, Options{Logger: quiet()})
				if err == nil {
					b.Close()
					t.Fatal("Dial with a wrong password succeeded")
				}
				t.Log(err)
				if ctx.Err() != nil {
					t.Errorf("Dial waited for its context to end: %v", err)
				}
				if !strings.HasPrefix(err.Error(), "busurl: kafkabus: SASL authentication failed: ") {
					t.Errorf("Dial = %q, want a SASL authentication failure", err)
				}
				if strings.Contains(err.Error(), "wr0ng-s3cret") {
					t.Errorf("Dial = %q: the error shows the password", err)
				}
			})
		})
	}
	t.Run("no client certificate", func(t *testing.T) {
		noKafkaEnv(t)
		c := startSecureKafka(t, p)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := Dial(ctx, "kafka://"+strings.Join(c.ListenAddrs(), ",")+"?tls_ca="+p.ca, Options{Logger: quiet()})
		t.Log(err)
		if err == nil || !strings.HasPrefix(err.Error(), "busurl: kafkabus: TLS handshake with ") {
			t.Errorf("Dial without the client certificate = %v, want a TLS handshake failure", err)
		}
	})
}

// tls=1 verifies the brokers' certificates against the system's CAs,
// which do not know the test CA; tls_insecure_skip_verify=1 does not.
func TestDialKafkaSkipVerify(t *testing.T) {
	noKafkaEnv(t)
	p := newPKI(t)
	c, err := kfake.NewCluster(kfake.TLS(&tls.Config{Certificates: []tls.Certificate{p.server}}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hosts := strings.Join(c.ListenAddrs(), ",")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = Dial(ctx, "kafka://"+hosts+"?tls=1", Options{Logger: quiet()})
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "x509: certificate signed by unknown authority") {
		t.Errorf("Dial with the system's CAs = %v, want an unknown authority", err)
	}
	var logged bytes.Buffer
	b, err := Dial(ctx, "kafka://"+hosts+"?tls_insecure_skip_verify=1", Options{Prefix: "skipverify", Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Publish(ctx, "task.skip", &bus.Message{ID: "1", Type: "x"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "tls_insecure_skip_verify=1") {
		t.Errorf("no warning logged: %q", logged.String())
	}
}

package busurl

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/natsauth"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
)

// users makes the NATS users of two systems under a temporary folder.
func users(t *testing.T) *natsauth.Set {
	t.Helper()
	set, err := natsauth.Ensure(t.TempDir(), natsauth.Config{Systems: []string{"accounts", "billing"}})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func seedPath(set *natsauth.Set, name string) string {
	for _, u := range set.Users {
		if u.Name == name {
			return u.SeedPath
		}
	}
	return ""
}

// A NATS URL's parameters that cannot work are refused before any
// connection, saying what is wrong and never showing a secret.
func TestBadNATSParams(t *testing.T) {
	p := newPKI(t)
	set := users(t)
	seed := seedPath(set, "accounts")
	secretSeed, err := natsauth.ReadSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	notSeed := filepath.Join(t.TempDir(), "not-a-seed")
	if err := os.WriteFile(notSeed, []byte("SUs3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, url, says string
		env             string // LETHE_NATS_NKEY_SEED
		opts            Options
	}{
		{"unknown parameter", "nats://h:4222?sasl=plain", `unknown nats URL parameter "sasl": want nkey_seed, creds, tls, tls_ca, tls_cert, tls_key, tls_insecure_skip_verify`, "", Options{}},
		{"seed file missing", "nats://h:4222?nkey_seed=/none/nats.seed", "nkey_seed: natsauth: NKey seed: open /none/nats.seed", "", Options{}},
		{"not a seed", "nats://h:4222?nkey_seed=" + notSeed, "not a valid NKey user seed", "", Options{}},
		{"env seed invalid", "nats://h:4222", EnvNKeySeed + ": not a valid NKey user seed", "SUs3cret", Options{}},
		{"env seed file missing", "nats://h:4222", EnvNKeySeed + ": natsauth: NKey seed: open /none/seed", "/none/seed", Options{}},
		{"default seed file missing", "nats://h:4222", "open /none/default.seed", "", Options{NKeySeedFile: "/none/default.seed"}},
		{"password and seed", "nats://u:s3cret@h:4222?nkey_seed=" + seed, "credentials of several kinds (user:password@, nkey_seed=)", "", Options{}},
		{"seed and creds", "nats://h:4222?nkey_seed=" + seed + "&creds=" + seed, "credentials of several kinds (nkey_seed=, creds=)", "", Options{}},
		{"creds missing", "nats://h:4222?creds=/none/user.creds", "creds: stat /none/user.creds", "", Options{}},
		{"tls in the URL and flags", "nats://h:4222?tls=1", "TLS is set both in the nats URL (tls) and apart (--bus-tls-ca)", "", Options{TLSCA: p.ca}},
		{"tls=0 with a CA", "nats://h:4222?tls=0&tls_ca=" + p.ca, "tls=0 and tls_ca contradict", "", Options{}},
		{"flag certificate without key", "nats://h:4222", "tls_cert needs tls_key", "", Options{TLSCert: p.cert}},
		{"CA flag without PEM", "kafka://h:9092", "tls_ca: no PEM certificate in " + p.bad, "", Options{TLSCA: p.bad}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvNKeySeed, tc.env)
			noKafkaEnv(t)
			tc.opts.Logger = quiet()
			err := dialRefused(t, tc.url, tc.opts)
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Dial(%q) = %q, want it to say %q", tc.url, err, tc.says)
			}
			for _, secret := range []string{"s3cret", string(secretSeed)} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Dial(%q) = %q: the error shows a secret", tc.url, err)
				}
			}
		})
	}
}

// Where a NATS URL's user and TLS come from.
func TestParseNATS(t *testing.T) {
	p := newPKI(t)
	set := users(t)
	acc, bil := seedPath(set, "accounts"), seedPath(set, "billing")
	seedOf := func(path string) string {
		s, err := natsauth.ReadSeed(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(s)
	}
	for _, tc := range []struct {
		name, url, env string
		opts           Options
		seed, creds    string
		tls, ca, cert  bool
	}{
		{"nothing", "nats://h:4222", "", Options{}, "", "", false, false, false},
		{"seed in the URL", "nats://h:4222?nkey_seed=" + acc, "", Options{}, acc, "", false, false, false},
		{"URL before env and default", "nats://h:4222?nkey_seed=" + acc, bil, Options{NKeySeedFile: bil}, acc, "", false, false, false},
		{"env path", "nats://h:4222", bil, Options{NKeySeedFile: acc}, bil, "", false, false, false},
		{"env seed", "nats://h:4222", seedOf(bil), Options{NKeySeedFile: acc}, bil, "", false, false, false},
		{"default", "nats://h:4222", "", Options{NKeySeedFile: acc}, acc, "", false, false, false},
		{"password: no default seed", "nats://u:pw@h:4222", "", Options{NKeySeedFile: acc}, "", "", false, false, false},
		{"password: no env seed", "nats://u:pw@h:4222", bil, Options{}, "", "", false, false, false},
		{"creds", "nats://h:4222?creds=" + acc, "", Options{NKeySeedFile: bil}, "", acc, false, false, false},
		{"tls", "nats://h:4222?tls=1", "", Options{}, "", "", true, false, false},
		{"tls in the URL", "nats://h:4222?tls_ca=" + p.ca + "&tls_cert=" + p.cert + "&tls_key=" + p.key, "", Options{}, "", "", true, true, true},
		{"tls flags", "nats://h:4222", "", Options{TLSCA: p.ca, TLSCert: p.cert, TLSKey: p.key}, "", "", true, true, true},
		{"CA flag only", "nats://h:4222", "", Options{TLSCA: p.ca}, "", "", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvNKeySeed, tc.env)
			tg, err := parse(tc.url, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			n := tg.nats
			want := ""
			if tc.seed != "" {
				want = seedOf(tc.seed)
			}
			if string(n.seed) != want {
				t.Errorf("seed from %q, want %s's", n.seedFrom, tc.seed)
			}
			if n.creds != tc.creds {
				t.Errorf("creds %q, want %q", n.creds, tc.creds)
			}
			if (n.tls != nil) != tc.tls {
				t.Fatalf("TLS %v, want %v", n.tls != nil, tc.tls)
			}
			if n.tls != nil {
				if tc.ca != (n.tls.RootCAs != nil) {
					t.Errorf("RootCAs set %v, want %v", n.tls.RootCAs != nil, tc.ca)
				}
				if tc.cert != (len(n.tls.Certificates) == 1) {
					t.Errorf("%d client certificates", len(n.tls.Certificates))
				}
			}
		})
	}
	// Kafka takes the TLS flags too, and no NATS seed.
	tg, err := parse("kafka://h:9092", Options{TLSCA: p.ca, NKeySeedFile: acc})
	if err != nil {
		t.Fatal(err)
	}
	if tg.kafka.tls == nil || tg.kafka.tls.RootCAs == nil {
		t.Error("kafka: the --bus-tls-ca flag is not used")
	}
}

// A NATS server that wants TLS with a client certificate and an NKey user
// is reached with the URL's parameters, or the flags and the default seed.
func TestDialNATSSecure(t *testing.T) {
	p := newPKI(t)
	set := users(t)
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Nkeys: set.ServerUsers(),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
		TLSVerify: true, TLSTimeout: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(srv.Shutdown)
	addr := srv.Addr().String()
	orch := seedPath(set, "orchestrator")
	tlsParams := "tls_ca=" + p.ca + "&tls_cert=" + p.cert + "&tls_key=" + p.key
	for _, tc := range []struct {
		name, url string
		opts      Options
		fails     string
	}{
		{"URL", "nats://" + addr + "?nkey_seed=" + orch + "&" + tlsParams, Options{}, ""},
		{"flags and default seed", "nats://" + addr, Options{NKeySeedFile: orch, TLSCA: p.ca, TLSCert: p.cert, TLSKey: p.key}, ""},
		{"no client certificate", "nats://" + addr + "?nkey_seed=" + orch + "&tls_ca=" + p.ca, Options{}, "tls"},
		{"no TLS", "nats://" + addr + "?nkey_seed=" + orch, Options{}, "certificate"},
		{"no user", "nats://" + addr + "?" + tlsParams, Options{}, "authorization violation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvNKeySeed, "")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tc.opts.Logger, tc.opts.Name = quiet(), "busurl-test"
			start := time.Now()
			b, err := Dial(ctx, tc.url, tc.opts)
			if tc.fails != "" {
				if err == nil {
					b.Close()
					t.Fatal("connected")
				}
				if !strings.Contains(strings.ToLower(err.Error()), tc.fails) {
					t.Errorf("error %v, want it to say %q", err, tc.fails)
				}
				if time.Since(start) > 10*time.Second {
					t.Errorf("refused after %v: a refusal that cannot change should fail at once", time.Since(start))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if err := b.(*natsbus.Bus).EnsureStreams(ctx, natsauth.Kinds...); err != nil {
				t.Fatal(err)
			}
			if err := b.Publish(ctx, "task.accounts", &bus.Message{ID: fmt.Sprint(tc.name), Type: "x"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A seed left in a data folder does not keep a service off a server
// without users: the server lets it in as it lets anyone.
func TestDialSeedToOpenServer(t *testing.T) {
	t.Setenv(EnvNKeySeed, "")
	srv, err := natsbus.StartEmbedded(t.TempDir(), "127.0.0.1", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	set := users(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Dial(ctx, srv.URL(), Options{NKeySeedFile: seedPath(set, "accounts"), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Publish(ctx, "task.open", &bus.Message{ID: "1", Type: "x"}); err != nil {
		t.Fatal(err)
	}
}

// A seed the URL or the environment names is meant: a server without
// users is an error then.
func TestDialExplicitSeedToOpenServer(t *testing.T) {
	srv, err := natsbus.StartEmbedded(t.TempDir(), "127.0.0.1", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	set := users(t)
	t.Setenv(EnvNKeySeed, seedPath(set, "accounts"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if b, err := Dial(ctx, srv.URL(), Options{Logger: quiet()}); err == nil {
		b.Close()
		t.Fatal("connected without the user it was told to be")
	} else if !strings.Contains(err.Error(), "nkeys not supported") {
		t.Fatalf("err = %v", err)
	}
}

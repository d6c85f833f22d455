package natsauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/events"
)

var testSystems = Config{Systems: []string{"accounts", "billing"}}

func quiet() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Seeds are made once, private, and read back the same after.
func TestEnsureMakesSeedsOnce(t *testing.T) {
	root := t.TempDir()
	set, err := Ensure(root, testSystems)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.Created, ","); got != "orchestrator,accounts,billing,mailer" {
		t.Fatalf("created %s", got)
	}
	for _, u := range set.Users {
		fi, err := os.Stat(u.SeedPath)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want 0600", u.SeedPath, fi.Mode().Perm())
		}
		di, err := os.Stat(filepath.Dir(u.SeedPath))
		if err != nil {
			t.Fatal(err)
		}
		if di.Mode().Perm() != 0o700 {
			t.Errorf("%s is %v, want 0700", filepath.Dir(u.SeedPath), di.Mode().Perm())
		}
		if u.SeedPath != filepath.Join(root, u.Name, "nats.seed") {
			t.Errorf("seed of %s at %s", u.Name, u.SeedPath)
		}
	}
	again, err := Ensure(root, testSystems)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Created) != 0 {
		t.Errorf("made again: %v", again.Created)
	}
	for i := range set.Users {
		if set.Users[i].Public != again.Users[i].Public {
			t.Errorf("%s has a new key", set.Users[i].Name)
		}
	}
	// The config file holds no seed.
	for _, u := range set.Users {
		seed, err := ReadSeed(u.SeedPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(set.ServerConfig()), string(seed)) {
			t.Fatalf("the server config holds %s's seed", u.Name)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no systems"},
		{Config{Systems: []string{"a.b"}}, `system "a.b"`},
		{Config{Systems: []string{"a*"}}, `system "a*"`},
		{Config{Systems: []string{"orchestrator"}}, "another user"},
		{Config{Systems: []string{"x", "x"}}, "twice"},
		{Config{Systems: []string{"x"}, AccountEvents: []string{"y"}}, "not among the systems"},
		{Config{Prefix: "a.b", Systems: []string{"x"}}, "prefix"},
	} {
		if _, err := Ensure(t.TempDir(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestReadSeedErrorsQuoteNoSecret(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	// A seed with a wrong checksum.
	secret := "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBY"
	if err := os.WriteFile(bad, []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadSeed(bad)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("error %v", err)
	}
	if _, err := ReadSeed(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	set, err := Ensure(dir, testSystems)
	if err != nil {
		t.Fatal(err)
	}
	// An nk-style file with comments around the seed, too open: read, and tightened.
	seed, err := ReadSeed(set.Users[0].SeedPath)
	if err != nil {
		t.Fatal(err)
	}
	nk := filepath.Join(dir, "nk")
	if err := os.WriteFile(nk, []byte("# orchestrator\n"+string(seed)+"\n# end\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSeed(nk)
	if err != nil || string(got) != string(seed) {
		t.Fatalf("nk file: %v", err)
	}
	if fi, _ := os.Stat(nk); fi.Mode().Perm() != 0o600 {
		t.Errorf("nk file left %v", fi.Mode().Perm())
	}
}

// The orchestrator's permissions name exactly the subjects of its part.
func TestPermissionsAreMinimal(t *testing.T) {
	set, err := Ensure(t.TempDir(), testSystems)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]User{}
	for _, u := range set.Users {
		byName[u.Name] = u
	}
	acc := byName["accounts"]
	want := []string{
		"$JS.API.STREAM.INFO.LETHE_TASK",
		"$JS.API.CONSUMER.CREATE.LETHE_TASK.connector-accounts_task_accounts.lethe.task.accounts",
		"$JS.API.CONSUMER.MSG.NEXT.LETHE_TASK.connector-accounts_task_accounts",
		"$JS.ACK.LETHE_TASK.connector-accounts_task_accounts.>",
		"lethe.receipt.>",
		"$JS.API.STREAM.INFO.LETHE_RECEIPT",
		"lethe.event.account-deleted",
		"$JS.API.STREAM.INFO.LETHE_EVENT",
	}
	if got := acc.Permissions.Publish.Allow; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("accounts publishes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := acc.Permissions.Subscribe.Allow; len(got) != 1 || got[0] != "_INBOX."+acc.Public+".>" {
		t.Errorf("accounts subscribes %v", got)
	}
	for _, s := range byName["billing"].Permissions.Publish.Allow {
		if strings.Contains(s, "event") || strings.Contains(s, "accounts") {
			t.Errorf("billing may publish %s", s)
		}
	}
}

// servers are where the permission checks run: the embedded server, and a
// nats-server process with the generated configuration file.
func TestEmbeddedServer(t *testing.T) {
	root := t.TempDir()
	set, err := Ensure(root, testSystems)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsbus.StartEmbedded(filepath.Join(root, "nats"), "127.0.0.1", -1, set.ServerUsers())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	checkServer(t, srv.URL(), set)
}

func TestNATSServerProcess(t *testing.T) {
	bin := "/usr/sbin/nats-server"
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("nats-server")
		if lerr != nil {
			t.Skipf("no nats-server binary (%s: %v; not on PATH either): apt-get install nats-server", bin, err)
		}
		bin = p
	}
	root := t.TempDir()
	set, err := Ensure(filepath.Join(root, "seeds"), testSystems)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "lethe-users.conf"), set.ServerConfig(), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := fmt.Sprintf("listen: 127.0.0.1:%d\nserver_name: lethe-test\njetstream {\n  store_dir: %q\n}\ninclude lethe-users.conf\n",
		port, filepath.Join(root, "js"))
	confPath := filepath.Join(root, "nats.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	cmd := exec.Command(bin, "-c", confPath)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("nats-server said:\n%s", out.String())
		}
	})
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(end) {
			t.Fatalf("nats-server did not listen within 10s: %s", out.String())
		}
	}
	t.Logf("%s", firstLine(out.String()))
	checkServer(t, url, set)
}

// lockedBuffer keeps what a process writes, safe to read meanwhile.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "Version") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func seedOf(t *testing.T, set *Set, name string) []byte {
	t.Helper()
	for _, u := range set.Users {
		if u.Name == name {
			seed, err := ReadSeed(u.SeedPath)
			if err != nil {
				t.Fatal(err)
			}
			return seed
		}
	}
	t.Fatalf("no user %s", name)
	return nil
}

func busAs(t *testing.T, url string, set *Set, name string) *natsbus.Bus {
	t.Helper()
	b, err := natsbus.Connect(context.Background(), url, natsbus.Config{
		Name: "test-" + name, NKeySeed: seedOf(t, set, name), ConnectTimeout: 5 * time.Second,
		RequestTimeout: time.Second, FetchWait: 500 * time.Millisecond, RetryDelay: 50 * time.Millisecond,
		Logger: quiet().With("user", name),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// rawAs connects as a user with the plain client, its permission errors
// sent to the channel.
func rawAs(t *testing.T, url string, set *Set, name string) (*nats.Conn, <-chan error) {
	t.Helper()
	var path string
	for _, u := range set.Users {
		if u.Name == name {
			path = u.SeedPath
		}
	}
	auth, err := nats.NkeyOptionFromSeed(path)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 16)
	pub, err := natsbus.PublicKey(seedOf(t, set, name))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, auth, nats.CustomInboxPrefix(natsbus.InboxPrefix(pub)),
		nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// refused waits for the server's permissions violation naming subject.
func refused(t *testing.T, errs <-chan error, what string) {
	t.Helper()
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), what) {
			t.Errorf("%s: got %v, want a permissions violation", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("%s: allowed", what)
	}
}

func checkServer(t *testing.T, url string, set *Set) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("anonymous refused", func(t *testing.T) {
		nc, err := nats.Connect(url, nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
			t.Fatal("a client without credentials got in")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("anonymous: %v, want an authorization violation", err)
		}
		// Nor with a key the server does not know.
		other, err := Ensure(t.TempDir(), testSystems)
		if err != nil {
			t.Fatal(err)
		}
		_, err = natsbus.Connect(ctx, url, natsbus.Config{NKeySeed: seedOf(t, other, "orchestrator"), ConnectTimeout: 5 * time.Second})
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("unknown key: %v", err)
		}
	})

	// The connectors start first: they wait for the streams, which only
	// the orchestrator may make.
	receipts := make(chan *bus.Message, 4)
	tasks := make(chan *bus.Message, 4)
	accounts := busAs(t, url, set, "accounts")
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	consumed := make(chan error, 1)
	go func() {
		consumed <- accounts.Consume(cctx, events.TaskTopic("accounts"), ConnectorGroup("accounts"), func(ctx context.Context, m *bus.Message) error {
			tasks <- m
			return accounts.Publish(ctx, events.TopicReceipts, &bus.Message{ID: "r-" + m.ID, Type: "receipt", Data: m.Data})
		})
	}()
	time.Sleep(300 * time.Millisecond)

	orch := busAs(t, url, set, "orchestrator")
	if err := orch.EnsureStreams(ctx, Kinds...); err != nil {
		t.Fatal(err)
	}
	go orch.Consume(cctx, events.TopicReceipts, OrchestratorGroup, func(_ context.Context, m *bus.Message) error {
		receipts <- m
		return nil
	})
	go orch.Consume(cctx, events.TopicAccountDeleted, OrchestratorGroup, func(_ context.Context, m *bus.Message) error {
		receipts <- m
		return nil
	})
	go orch.Consume(cctx, events.TopicNoticeDelivered, OrchestratorGroup, func(_ context.Context, m *bus.Message) error {
		receipts <- m
		return nil
	})

	t.Run("orchestrator and connector", func(t *testing.T) {
		if err := orch.Publish(ctx, events.TaskTopic("accounts"), &bus.Message{ID: "t1", Type: "task", Data: []byte("erase")}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-tasks:
			if m.ID != "t1" {
				t.Fatalf("task %s", m.ID)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the connector got no task")
		}
		select {
		case m := <-receipts:
			if m.ID != "r-t1" || string(m.Data) != "erase" {
				t.Fatalf("receipt %s %q", m.ID, m.Data)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the orchestrator got no receipt")
		}
		// Both were acked: the work queues keep nothing.
		nc, _ := rawAs(t, url, set, "orchestrator")
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		for _, stream := range []string{"LETHE_TASK", "LETHE_RECEIPT"} {
			for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				st, err := js.Stream(ctx, stream)
				if err != nil {
					t.Fatal(err)
				}
				if n := st.CachedInfo().State.Msgs; n == 0 {
					break
				} else if time.Now().After(end) {
					t.Fatalf("%s keeps %d acked messages", stream, n)
				}
			}
		}
		// The accounts app's event.
		if err := accounts.Publish(ctx, events.TopicAccountDeleted, &bus.Message{ID: "e1", Type: "event"}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-receipts:
			if m.ID != "e1" {
				t.Fatalf("event %s", m.ID)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the orchestrator got no event")
		}
		// Dead letters and notices; the mailer reads the notices.
		for _, topic := range []string{events.DeadLetterTopic("accounts"), events.TopicNotices} {
			if err := orch.Publish(ctx, topic, &bus.Message{ID: "x-" + topic, Type: "x"}); err != nil {
				t.Fatal(err)
			}
		}
		mailer := busAs(t, url, set, "mailer")
		notices := make(chan *bus.Message, 1)
		mctx, mstop := context.WithCancel(ctx)
		defer mstop()
		go mailer.Consume(mctx, events.TopicNotices, MailerGroup, func(_ context.Context, m *bus.Message) error {
			notices <- m
			return nil
		})
		select {
		case <-notices:
		case <-time.After(15 * time.Second):
			t.Fatal("the mailer got no notice")
		}
		// The mailer acknowledges it to the orchestrator.
		if err := mailer.Publish(ctx, events.TopicNoticeDelivered, &bus.Message{ID: "ack-1", Type: "ack"}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-receipts:
			if m.ID != "ack-1" {
				t.Fatalf("acknowledgement %s", m.ID)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the orchestrator got no acknowledgement")
		}
	})

	t.Run("connector confined", func(t *testing.T) {
		nc, errs := rawAs(t, url, set, "accounts")
		// Publishing another system's task.
		if err := nc.Publish("lethe.task.billing", []byte("forged")); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
		refused(t, errs, `Publish to "lethe.task.billing"`)
		// Its own task topic too: only the orchestrator sends tasks.
		nc.Publish("lethe.task.accounts", []byte("forged"))
		nc.Flush()
		refused(t, errs, `Publish to "lethe.task.accounts"`)
		// Subscribing to another system's tasks, to every inbox, to
		// receipts.
		for _, subject := range []string{"lethe.task.billing", "lethe.task.>", "_INBOX.>", "lethe.receipt.v1", "$JS.ACK.>"} {
			sub, err := nc.SubscribeSync(subject)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sub.NextMsg(5 * time.Second); !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("subscribe %s: %v, want a permissions violation", subject, err)
			}
			refused(t, errs, `Subscription to "`+subject+`"`)
		}
		// A JetStream consumer of billing's tasks, a pull from billing's
		// consumer, a stream of its own, deleting the task stream.
		for _, subject := range []string{
			"$JS.API.CONSUMER.CREATE.LETHE_TASK.connector-billing_task_billing.lethe.task.billing",
			"$JS.API.CONSUMER.CREATE.LETHE_TASK.connector-accounts_task_accounts.lethe.task.billing",
			"$JS.API.CONSUMER.CREATE.LETHE_TASK.x",
			"$JS.API.CONSUMER.MSG.NEXT.LETHE_TASK.connector-billing_task_billing",
			"$JS.API.STREAM.CREATE.STEAL",
			"$JS.API.STREAM.DELETE.LETHE_TASK",
			"$JS.API.STREAM.MSG.GET.LETHE_TASK",
		} {
			_, err := nc.Request(subject, []byte(`{}`), 500*time.Millisecond)
			if err == nil {
				t.Errorf("%s answered", subject)
			}
			refused(t, errs, `Publish to "`+subject+`"`)
		}
		// Through the adapter: a publish of a task fails, and no task
		// reached billing's stream.
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		defer pcancel()
		if err := accounts.Publish(pctx, events.TaskTopic("billing"), &bus.Message{ID: "forged", Type: "task"}); err == nil {
			t.Error("the accounts connector published a task for billing")
		}
		billing := busAs(t, url, set, "billing")
		bctx, bstop := context.WithTimeout(ctx, 2*time.Second)
		defer bstop()
		got := 0
		billing.Consume(bctx, events.TaskTopic("billing"), ConnectorGroup("billing"), func(context.Context, *bus.Message) error {
			got++
			return nil
		})
		if got != 0 {
			t.Errorf("billing got %d forged tasks", got)
		}
	})

	t.Run("billing may not publish account events", func(t *testing.T) {
		nc, errs := rawAs(t, url, set, "billing")
		nc.Publish("lethe.event.account-deleted", nil)
		nc.Flush()
		refused(t, errs, `Publish to "lethe.event.account-deleted"`)
		// Nor acknowledge notices: only the mailer does.
		nc.Publish("lethe.event.notice-delivered", nil)
		nc.Flush()
		refused(t, errs, `Publish to "lethe.event.notice-delivered"`)
	})

	t.Run("mailer confined", func(t *testing.T) {
		nc, errs := rawAs(t, url, set, "mailer")
		for _, subject := range []string{"lethe.event.account-deleted", "lethe.task.accounts", "lethe.receipt.v1"} {
			nc.Publish(subject, []byte("forged"))
			nc.Flush()
			refused(t, errs, `Publish to "`+subject+`"`)
		}
	})

	t.Run("orchestrator confined", func(t *testing.T) {
		nc, errs := rawAs(t, url, set, "orchestrator")
		nc.Publish("lethe.receipt.v1", []byte("forged"))
		nc.Flush()
		refused(t, errs, `Publish to "lethe.receipt.v1"`)
		sub, err := nc.SubscribeSync("lethe.task.>")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sub.NextMsg(5 * time.Second); !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("subscribe lethe.task.>: %v", err)
		}
	})

	stop()
	select {
	case err := <-consumed:
		if err != nil {
			t.Errorf("connector's consumer: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the connector's consumer did not stop")
	}
}

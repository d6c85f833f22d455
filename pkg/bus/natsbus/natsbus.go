// Package natsbus is the NATS JetStream adapter of [bus.Bus].
//
// Each kind of topic ("task", "receipt", ...) is one durable work-queue
// stream with file storage whose subjects are "<prefix>.<kind>.>"; each
// (group, topic) pair is one durable pull consumer with explicit acks and
// one filter subject, which works on servers from v2.9 on. A consumer
// pulls one message at a time, when its handler is free, and acks it, naks
// it with a delay (a failed handler) or terminates it (a [bus.Permanent]
// failure).
//
// A topic has one consuming group: a work queue deletes what its consumer
// acked, and the server refuses a second consumer of the same subject
// ([bus.ErrGroupConflict]). Message ids are sent as Nats-Msg-Id so the
// server drops a re-publish of the same id within the duplicate window.
//
// The names a server's permissions must allow are made here, in one place:
// [StreamName], [ConsumerName], and [InboxPrefix], the inbox of a client
// that connects with an NKey (package natsauth builds each service's
// permissions from them). A client whose user may not create streams waits
// for them to be made by one that may (the orchestrator, at its start).
package natsbus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"golang.org/x/sync/errgroup"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/busadapter"
)

// CloudEvents binary-mode headers, as every adapter names them.
const (
	HeaderID     = bus.HeaderID
	HeaderType   = bus.HeaderType
	HeaderSource = bus.HeaderSource
	HeaderTime   = bus.HeaderTime
	HeaderKey    = bus.HeaderKey
)

// Config tunes the adapter. The zero value is usable.
type Config struct {
	// Prefix starts every subject and stream name, so that several
	// installations (or tests) can share one server. Default "lethe".
	Prefix string
	// AckWait is how long the server waits for an ack before redelivering.
	AckWait time.Duration
	// RetryDelay is the delay before a message whose handler failed is
	// redelivered.
	RetryDelay time.Duration
	// Duplicates is the window within which a re-published id is dropped.
	Duplicates time.Duration
	// MaxAge bounds how long a message no consumer took stays in a stream;
	// MaxAgeOf overrides it for the streams of some kinds of topic.
	MaxAge   time.Duration
	MaxAgeOf map[string]time.Duration
	// ConnectTimeout bounds the first connection; the client reconnects
	// forever after that.
	ConnectTimeout time.Duration
	// FetchWait bounds a pull request's wait for a message; a server that
	// went away is noticed after at most this long. Default 5 s.
	FetchWait time.Duration
	// RequestTimeout bounds a JetStream API request (a publish, a consumer
	// set up) whose context has no deadline. Default 5 s.
	RequestTimeout time.Duration
	// Name is the client name shown by the server.
	Name string
	// NKeySeed, when set, is the seed ("SU...") of the NKey user the client
	// connects as (package natsauth makes one per service). Its public key
	// also names the client's inbox, [InboxPrefix], which is all of the
	// server's replies to this client that its user may read.
	NKeySeed []byte
	// CredsFile, when set, is a user credentials file (a user JWT and its
	// NKey seed) for a server on decentralised (operator) auth.
	CredsFile string
	// TLS, when set, connects with TLS (the server's certificate checked
	// against TLS.RootCAs, or the system's CAs; a client certificate in
	// TLS.Certificates is shown to a server that asks for one).
	TLS *tls.Config
	// Handlers is how many messages each Consume hands to its handler at
	// once, pulled as many at a time as handlers are free (default 1: one
	// at a time, in the order the server hands them out). A service whose
	// handler waits on the disk or a database (the orchestrator recording
	// receipts, a connector erasing) raises it, so that its work overlaps
	// and its store commits it in groups.
	Handlers int
	// Logger tells of broker trouble the adapter rides out.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = "lethe"
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = time.Second
	}
	if c.Duplicates == 0 {
		c.Duplicates = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxAge == 0 {
		c.MaxAge = 90 * 24 * time.Hour // past the longest legal deadline (3 months)
	}
	if c.MaxAgeOf == nil {
		// Notices name the person they tell: a mailer takes them within
		// days, or a person's contact must not wait on the broker.
		c.MaxAgeOf = map[string]time.Duration{"notice": NoticeMaxAge}
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.FetchWait == 0 {
		c.FetchWait = 5 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	c.Handlers = max(c.Handlers, 1)
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if strings.ContainsAny(c.Prefix, ".*> ") {
		return fmt.Errorf("natsbus: prefix %q must be one subject token", c.Prefix)
	}
	return nil
}

// Bus is a [bus.Bus] on NATS JetStream.
type Bus struct {
	cfg Config
	nc  *nats.Conn
	js  jetstream.JetStream

	mu      sync.Mutex
	streams map[string]bool
	// mayNotCreate is set, and createRefused closed, once the server
	// refused this user the creation of a stream: from then on a missing
	// stream is waited for.
	mayNotCreate  atomic.Bool
	createRefused chan struct{}
	refuseOnce    sync.Once
}

// ErrStreamMissing is returned (wrapped) by Publish, and logged by Consume
// while it waits, when a stream does not exist and this client's user may
// not create it: a client that may (the orchestrator) has not started yet.
var ErrStreamMissing = errors.New("natsbus: the stream does not exist and this user may not create it: it is made by the orchestrator at its start")

// StreamName is the name of the stream of a kind of topic ("task") under a
// prefix ("lethe"): "LETHE_TASK".
func StreamName(prefix, kind string) string { return strings.ToUpper(prefix + "_" + kind) }

// ConsumerName is the name of the durable consumer of a group on a topic.
func ConsumerName(group, topic string) string {
	r := strings.NewReplacer(".", "_", "*", "all", ">", "rest", " ", "_")
	return r.Replace(group + "_" + topic)
}

// InboxPrefix is the inbox of a client that connects with the NKey whose
// public key is given: "_INBOX.<public key>". Its user needs to subscribe
// to it ("_INBOX.<public key>.>") and to nothing else to get the answers of
// JetStream (publish acks, pulled messages); other users' inboxes stay
// out of its reach.
func InboxPrefix(publicKey string) string { return "_INBOX." + publicKey }

// PublicKey is the public key ("U...") of a user's NKey seed.
func PublicKey(seed []byte) (string, error) {
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return "", errors.New("natsbus: not an NKey seed") // its text may quote the seed
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("natsbus: NKey seed: %w", err)
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return "", errors.New("natsbus: the NKey seed is not a user's (its public key must start with U)")
	}
	return pub, nil
}

// clientOptions are the connection's options from cfg: reconnecting,
// name, credentials and TLS.
func clientOptions(cfg Config) ([]nats.Option, error) {
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		// The adapter logs what the server reports apart (New); the
		// client's default handler would print it to stderr as well.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})}
	if cfg.Name != "" {
		opts = append(opts, nats.Name(cfg.Name))
	}
	if len(cfg.NKeySeed) > 0 && cfg.CredsFile != "" {
		return nil, errors.New("natsbus: an NKey seed and a credentials file: give one")
	}
	if len(cfg.NKeySeed) > 0 {
		pub, err := PublicKey(cfg.NKeySeed)
		if err != nil {
			return nil, err
		}
		kp, err := nkeys.FromSeed(cfg.NKeySeed)
		if err != nil {
			return nil, errors.New("natsbus: not an NKey seed")
		}
		opts = append(opts, nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix(InboxPrefix(pub)))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS.Clone()))
	}
	return opts, nil
}

// permanentConnectError reports a failure to connect that waiting does
// not mend: the server refused the credentials, or TLS cannot work.
func permanentConnectError(err error) bool {
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		hostname  x509.HostnameError
	)
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired) ||
		errors.Is(err, nats.ErrNkeysNotSupported) ||
		errors.Is(err, nats.ErrSecureConnRequired) || errors.Is(err, nats.ErrSecureConnWanted) ||
		errors.Is(err, nats.ErrClientCertOrRootCAsRequired) || errors.Is(err, nats.ErrNoUserCB) ||
		errors.As(err, &verify) || errors.As(err, &authority) || errors.As(err, &hostname) ||
		strings.Contains(strings.ToLower(err.Error()), "authorization violation") ||
		// The server refused the handshake (no or a bad client
		// certificate): crypto/tls has no exported type for its alerts.
		strings.Contains(err.Error(), "remote error: tls: ")
}

var _ bus.Bus = (*Bus)(nil)

// Connect dials url ("nats://host:4222"), retrying with backoff until
// cfg.ConnectTimeout, so a service may start before its broker.
func Connect(ctx context.Context, url string, cfg Config) (*Bus, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts, err := clientOptions(cfg)
	if err != nil {
		return nil, err
	}
	b := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second),
		backoff.WithMaxElapsedTime(cfg.ConnectTimeout)), ctx)
	nc, err := backoff.RetryWithData(func() (*nats.Conn, error) {
		nc, err := nats.Connect(url, opts...)
		if err != nil && (errors.Is(err, nats.ErrBadSubject) || strings.Contains(err.Error(), "url") || permanentConnectError(err)) {
			return nil, backoff.Permanent(err)
		}
		return nc, err
	}, b)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect %s: %w", busadapter.RedactURL(url), err)
	}
	return New(nc, cfg)
}

// New uses an existing connection; Close closes it. (The credentials and
// TLS of cfg are for Connect: nc has its own.) The connection's error
// handler is kept, after the adapter's own, which logs what the server
// refused this client.
func New(nc *nats.Conn, cfg Config) (*Bus, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.RequestTimeout))
	if err != nil {
		return nil, fmt.Errorf("natsbus: jetstream: %w", err)
	}
	b := &Bus{cfg: cfg, nc: nc, js: js, streams: map[string]bool{}, createRefused: make(chan struct{})}
	prev := nc.Opts.AsyncErrorCB
	nc.SetErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
		b.asyncError(err)
		if prev != nil {
			prev(c, s, err)
		}
	})
	return b, nil
}

// refusedPublish finds the subject in the server's permissions violation
// for a publish.
var refusedPublish = regexp.MustCompile(`(?i)publish to "?([^"\s]+)"?`)

// asyncError is told what the server reported outside of any call: a
// permissions violation is logged (it is otherwise only a request that
// timed out), and one for creating a stream marks this client as one that
// waits for streams.
func (b *Bus) asyncError(err error) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		b.cfg.Logger.Warn("NATS: asynchronous error", "err", err)
		return
	}
	if m := refusedPublish.FindStringSubmatch(err.Error()); m != nil && strings.HasPrefix(m[1], "$JS.API.STREAM.CREATE.") {
		b.mayNotCreate.Store(true)
		b.refuseOnce.Do(func() { close(b.createRefused) })
		b.cfg.Logger.Info("NATS: this user may not create streams: waiting for them to be made (by the orchestrator)", "stream", strings.TrimPrefix(m[1], "$JS.API.STREAM.CREATE."))
		return
	}
	b.cfg.Logger.Error("NATS: the server refused this user an operation its permissions do not allow", "err", err)
}

// Close closes the connection; handlers in flight can no longer ack, so
// their messages are redelivered after the ack wait.
func (b *Bus) Close() error {
	b.nc.Close()
	return nil
}

func (b *Bus) subject(topic string) string { return b.cfg.Prefix + "." + topic }

// NoticeMaxAge is how long a notice to a data subject waits on the broker
// for its consumer by default.
const NoticeMaxAge = 7 * 24 * time.Hour

// maxAge is the age limit of the stream of a kind of topic.
func (b *Bus) maxAge(kind string) time.Duration {
	if d, ok := b.cfg.MaxAgeOf[kind]; ok {
		return d
	}
	return b.cfg.MaxAge
}

// stream makes sure the stream for the topic's kind exists and returns its name.
func (b *Bus) stream(ctx context.Context, topic string) (string, error) {
	kind, err := bus.Kind(topic)
	if err != nil {
		return "", err
	}
	return b.ensureStream(ctx, kind)
}

// EnsureStreams makes the streams of the kinds of topic given, those that
// do not exist yet, so that clients that may not make them (connectors)
// need not wait for the first message.
func (b *Bus) EnsureStreams(ctx context.Context, kinds ...string) error {
	for _, kind := range kinds {
		if _, err := bus.Kind(kind + ".x"); err != nil {
			return fmt.Errorf("natsbus: kind %q: %w", kind, err)
		}
		if _, err := b.ensureStream(ctx, kind); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bus) ensureStream(ctx context.Context, kind string) (string, error) {
	name := StreamName(b.cfg.Prefix, kind)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.streams[name] {
		return name, nil
	}
	// An existing stream is used as it is: updating it while other clients
	// add consumers races inside the server, and an operator may have tuned
	// it (replicas, limits) on purpose.
	missing := fmt.Errorf("natsbus: stream %s: %w", name, ErrStreamMissing)
	_, err := b.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) && b.mayNotCreate.Load() {
		return "", missing
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// The server answers a request it refuses with nothing (it tells
		// the connection apart, asyncError): stop waiting when it does.
		cctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
		go func() {
			select {
			case <-b.createRefused:
				cancel()
			case <-cctx.Done():
			}
		}()
		// Work-queue retention: a message is deleted once its consumer
		// acked it, so task payloads (which name the subject) do not stay
		// on the broker after the work is done. Each group has its own
		// filter subject, which a work queue requires.
		_, err = b.js.CreateStream(cctx, jetstream.StreamConfig{
			Name:       name,
			Subjects:   []string{b.cfg.Prefix + "." + kind + ".>"},
			Storage:    jetstream.FileStorage,
			Retention:  jetstream.WorkQueuePolicy,
			MaxAge:     b.maxAge(kind),
			Duplicates: b.cfg.Duplicates,
		})
		cancel()
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // another client made it meanwhile
		}
		if err != nil && b.mayNotCreate.Load() {
			return "", missing // refused: the server said so apart
		}
	}
	if err != nil {
		return "", fmt.Errorf("natsbus: stream %s: %w", name, err)
	}
	b.streams[name] = true
	return name, nil
}

// Publish stores msg in the topic's stream and waits for the server's ack.
func (b *Bus) Publish(ctx context.Context, topic string, msg *bus.Message) error {
	m, opts, err := b.message(ctx, topic, msg)
	if err != nil {
		return err
	}
	if _, err := b.js.PublishMsg(ctx, m, opts...); err != nil {
		return b.publishError(topic, err)
	}
	return nil
}

// PublishBatch implements [bus.BatchPublisher]: every message is published
// asynchronously, then each ack is waited for (at most RequestTimeout
// after the last was sent).
func (b *Bus) PublishBatch(ctx context.Context, msgs []bus.Outgoing) []error {
	errs := make([]error, len(msgs))
	acks := make([]jetstream.PubAckFuture, len(msgs))
	for i, o := range msgs {
		m, opts, err := b.message(ctx, o.Topic, o.Msg)
		if err == nil {
			acks[i], err = b.js.PublishMsgAsync(m, opts...)
		}
		if err != nil {
			errs[i] = b.publishError(o.Topic, err)
		}
	}
	wait, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	for i, ack := range acks {
		if ack == nil {
			continue
		}
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			errs[i] = b.publishError(msgs[i].Topic, err)
		case <-wait.Done():
			// Out of time: what has not been acked by now counts as not
			// published (a second publish is de-duplicated by its id).
			select {
			case <-ack.Ok():
			default:
				errs[i] = b.publishError(msgs[i].Topic, nats.ErrTimeout)
			}
		}
	}
	return errs
}

func (b *Bus) publishError(topic string, err error) error {
	if b.nc.IsClosed() {
		err = bus.ErrClosed
	}
	return fmt.Errorf("natsbus: publish %s: %w", topic, err)
}

// message is msg as the NATS message published to topic's stream (made
// first if need be), with its publish options.
func (b *Bus) message(ctx context.Context, topic string, msg *bus.Message) (*nats.Msg, []jetstream.PublishOpt, error) {
	if _, err := b.stream(ctx, topic); err != nil {
		return nil, nil, err
	}
	m := nats.NewMsg(b.subject(topic))
	m.Data = msg.Data
	m.Header.Set(HeaderID, msg.ID)
	m.Header.Set(HeaderType, msg.Type)
	m.Header.Set(HeaderSource, msg.Source)
	t := msg.Time
	if t.IsZero() {
		t = time.Now()
	}
	m.Header.Set(HeaderTime, t.UTC().Format(time.RFC3339Nano))
	if msg.Key != "" {
		m.Header.Set(HeaderKey, msg.Key)
	}
	var opts []jetstream.PublishOpt
	if msg.ID != "" {
		opts = append(opts, jetstream.WithMsgID(msg.ID))
	}
	return m, opts, nil
}

// Consume runs a durable consumer named after group and topic. A broker
// that is away (an outage, a restart) is waited for: Consume sets the
// consumer up again with backoff and returns only when ctx is cancelled
// (nil), the topic is invalid ([bus.ErrBadTopic]), another group consumes
// it ([bus.ErrGroupConflict]) or the bus was closed ([bus.ErrClosed]).
func (b *Bus) Consume(ctx context.Context, topic, group string, h bus.Handler) error {
	if _, err := bus.Kind(topic); err != nil {
		return err
	}
	consume := func(ctx context.Context) (bool, error) { return b.consume(ctx, topic, group, h) }
	return busadapter.Resume(ctx, b.cfg.Logger, topic, group, nil, consume, func(err error) error {
		switch {
		case b.nc.IsClosed():
			return bus.ErrClosed
		case errors.Is(err, bus.ErrGroupConflict):
			return err
		}
		return nil
	})
}

// consume runs the consumer until ctx is cancelled or something breaks; it
// reports whether it handled any message.
func (b *Bus) consume(ctx context.Context, topic, group string, h bus.Handler) (handled bool, err error) {
	stream, err := b.stream(ctx, topic)
	if err != nil {
		return false, err
	}
	durable := ConsumerName(group, topic)
	cons, err := b.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: b.subject(topic),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.cfg.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
	})
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errWorkQueueNotUnique {
		return false, fmt.Errorf("natsbus: consumer %s on %s: %w", durable, topic, bus.ErrGroupConflict)
	}
	if err != nil {
		return false, fmt.Errorf("natsbus: consumer %s: %w", durable, err)
	}
	// Pull requests ask for as many messages as handlers are free, and no
	// more: a message waiting in the client would run down its ack wait
	// although no handler started on it, and would be stranded there if
	// the consumer stopped. Each free handler holds a token in idle: a
	// pull takes as many tokens as it asks for messages, a handler gives
	// one back once its message is handled, and the pull gives back those
	// it got no message for. Asking for several at once spares a pull
	// request, a subscription and a round trip per message.
	var took atomic.Bool
	idle := make(chan struct{}, b.cfg.Handlers)
	for range b.cfg.Handlers {
		idle <- struct{}{}
	}
	work := make(chan jetstream.Msg)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		for {
			select {
			case <-idle:
			case <-gctx.Done():
				return nil
			}
			n := 1
		more:
			for n < b.cfg.Handlers {
				select {
				case <-idle:
					n++
				default:
					break more
				}
			}
			got, err := b.pull(gctx, cons, n, work)
			for range n - got {
				idle <- struct{}{}
			}
			if err != nil {
				return fmt.Errorf("natsbus: next %s: %w", durable, err)
			}
		}
	})
	for range b.cfg.Handlers {
		g.Go(func() error {
			for {
				select {
				case m := <-work:
					b.handle(ctx, m, h)
					took.Store(true)
					idle <- struct{}{}
				case <-gctx.Done():
					return nil
				}
			}
		})
	}
	err = g.Wait()
	return took.Load(), err
}

// pull asks the consumer for n messages and hands each to a handler free
// for it (through work) as it comes, until n came or the pull expired. It
// returns how many it handed over: a message that came as ctx ended is
// given back to the server for the next consumer.
func (b *Bus) pull(ctx context.Context, cons jetstream.Consumer, n int, work chan<- jetstream.Msg) (int, error) {
	fctx, cancel := context.WithTimeout(ctx, b.cfg.FetchWait)
	defer cancel()
	batch, err := cons.Fetch(n, jetstream.FetchContext(fctx))
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil
		}
		return 0, err
	}
	got := 0
	for m := range batch.Messages() {
		select {
		case work <- m:
			got++
		case <-ctx.Done():
			_ = m.Nak() // came as we stopped: for the next consumer
		}
	}
	switch err := batch.Error(); {
	case err == nil, ctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return got, nil // nothing more came: ask again
	default:
		return got, err
	}
}

// keepInProgress tells the server every interval that m is still being
// worked on, until the returned stop is called.
func keepInProgress(m jetstream.Msg, interval time.Duration) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock() // t is set before the first tick reads it
	t = time.AfterFunc(interval, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			_ = m.InProgress()
			t.Reset(interval)
		}
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// errWorkQueueNotUnique is the server's JSConsumerWQConsumerNotUniqueErr:
// a work-queue stream has one consumer per subject.
const errWorkQueueNotUnique jetstream.ErrorCode = 10100

func (b *Bus) handle(ctx context.Context, m jetstream.Msg, h bus.Handler) {
	msg := &bus.Message{
		ID:     m.Headers().Get(HeaderID),
		Type:   m.Headers().Get(HeaderType),
		Source: m.Headers().Get(HeaderSource),
		Key:    m.Headers().Get(HeaderKey),
		Data:   m.Data(),
	}
	if t, err := time.Parse(time.RFC3339Nano, m.Headers().Get(HeaderTime)); err == nil {
		msg.Time = t
	}
	if md, err := m.Metadata(); err == nil {
		msg.Delivery = int(md.NumDelivered)
	}
	// While the handler works, tell the server so before the ack wait runs
	// out, or it would hand the message to another member of the group.
	// A timer, not a goroutine per message: most handlers end long before
	// it fires.
	stop := keepInProgress(m, b.cfg.AckWait/3)
	err := h(ctx, msg)
	stop()
	switch {
	case err == nil:
		_ = m.DoubleAck(context.WithoutCancel(ctx))
	case bus.IsPermanent(err):
		_ = m.Term()
	case ctx.Err() != nil:
		// Cut short by the consumer stopping, not failed: the next
		// consumer of the group may take it at once.
		_ = m.Nak()
	default:
		_ = m.NakWithDelay(b.cfg.RetryDelay)
	}
}

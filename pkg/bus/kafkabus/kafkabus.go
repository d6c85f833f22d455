// Package kafkabus is the Kafka adapter of [bus.Bus], on
// github.com/segmentio/kafka-go.
//
// Each bus topic is one Kafka topic named "<prefix>.<topic>"
// ("lethe.task.accounts"), created if missing. A message's Key (a request
// id) is the Kafka key, so a request's messages stay in order on one
// partition; its CloudEvents attributes travel as the headers ce-id,
// ce-type, ce-source, ce-time and lethe-key. Publish waits for every
// in-sync replica (RequiredAcks all).
//
// Each (group, topic) pair is one consumer group, "<prefix>.<group>.<topic>",
// mirroring natsbus's one durable consumer per pair: consuming one topic
// never stops another topic's consumers for a rebalance. A group's offset
// is committed only after the handler succeeded; a failed message is
// retried in place after a delay (the messages behind it on its partition
// wait, which keeps the order per key), and a [bus.Permanent] one is
// committed past. Several groups may consume one topic, each getting every
// message.
//
// kafka-go has no idempotent producer: a re-published message id is
// delivered again, and Lethe's handlers, idempotent by id, make one effect
// of it.
//
// The topics the adapter creates get retention.ms ([Config.Retention],
// default 7 days) and cleanup.policy=delete: messages carry sealed
// personal data and must not stay for the broker's default retention,
// which may be forever. A topic an operator made is used as it is.
//
// [Config.TLS] and [Config.SASL] (kafka-go's sasl/plain or sasl/scram)
// apply to every connection the adapter makes: the producer's, the
// consumers' and the one that creates topics. [Connect] authenticates
// before it returns, so that wrong credentials fail a service at start
// ("kafkabus: SASL authentication failed: ...") rather than at its first
// publish.
package kafkabus

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/busadapter"
)

// Config tunes the adapter. The zero value is usable.
type Config struct {
	// Prefix starts every topic and group name, so that several
	// installations (or tests) can share one cluster. Default "lethe".
	Prefix string
	// Partitions and ReplicationFactor are those of the topics the adapter
	// creates. Defaults 6 and -1 (the broker's default.replication.factor).
	Partitions        int
	ReplicationFactor int
	// Retention is the retention.ms of the topics the adapter creates
	// (with cleanup.policy=delete): how long the brokers keep a message,
	// consumed or not. Default 7 days; at least 1 minute.
	Retention time.Duration
	// TLS, if not nil, is used for every connection to the brokers.
	TLS *tls.Config
	// SASL, if not nil, authenticates every connection to the brokers:
	// plain.Mechanism or scram.Mechanism of kafka-go's sasl packages.
	SASL sasl.Mechanism
	// RetryDelay is the delay before a message whose handler failed is
	// handled again. Default 1 s.
	RetryDelay time.Duration
	// BatchTimeout bounds how long Publish waits to fill a batch. Default
	// 5 ms: Lethe publishes one message at a time and waits for it.
	BatchTimeout time.Duration
	// Consumer group timings (kafka-go's defaults: 3 s, 30 s, 30 s).
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	// JoinGroupBackoff is the wait before joining a group again after an
	// error. Default 1 s.
	JoinGroupBackoff time.Duration
	// MaxWait bounds a fetch's long poll, and so how long closing a
	// consumer waits for it. Default 500 ms.
	MaxWait time.Duration
	// MetadataTTL is how long the producer trusts its map of partition
	// leaders: after a leader moved, a publish is retried for up to this
	// long. Default 6 s (kafka-go's).
	MetadataTTL time.Duration
	// CommitTimeout bounds the commit of a handled message. Default 10 s.
	CommitTimeout time.Duration
	// ConnectTimeout bounds the first contact with the cluster in Connect.
	// Default 30 s.
	ConnectTimeout time.Duration
	// Name is the client id the brokers see.
	Name string
	// Logger tells of broker trouble the adapter rides out.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = "lethe"
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = time.Second
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 5 * time.Millisecond
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 3 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 30 * time.Second
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = 30 * time.Second
	}
	if c.JoinGroupBackoff == 0 {
		c.JoinGroupBackoff = time.Second
	}
	if c.MaxWait == 0 {
		c.MaxWait = 500 * time.Millisecond
	}
	if c.MetadataTTL == 0 {
		c.MetadataTTL = 6 * time.Second
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = 10 * time.Second
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.Name == "" {
		c.Name = "lethe"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Prefix == "" || !validName(c.Prefix):
		return fmt.Errorf("kafkabus: prefix %q must be letters, digits, '.', '-' and '_'", c.Prefix)
	case c.Partitions < 1:
		return fmt.Errorf("kafkabus: partitions %d must be at least 1", c.Partitions)
	case c.ReplicationFactor < -1 || c.ReplicationFactor == 0:
		return fmt.Errorf("kafkabus: replication factor %d must be at least 1, or -1 for the broker's default", c.ReplicationFactor)
	case c.Retention < minRetention:
		return fmt.Errorf("kafkabus: retention %v must be at least %v: a shorter one loses messages before they are handled", c.Retention, minRetention)
	case c.HeartbeatInterval >= c.SessionTimeout:
		return fmt.Errorf("kafkabus: heartbeat interval %v must be shorter than the session timeout %v", c.HeartbeatInterval, c.SessionTimeout)
	}
	return nil
}

// DefaultRetention is the retention of the topics the adapter creates when
// [Config.Retention] is zero.
const DefaultRetention = 7 * 24 * time.Hour

const minRetention = time.Minute

// maxTopicLen is Kafka's limit on a topic name.
const maxTopicLen = 249

func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Bus is a [bus.Bus] on Kafka.
type Bus struct {
	cfg       Config
	brokers   []string
	transport *kafka.Transport
	client    *kafka.Client
	dialer    *kafka.Dialer
	w         *kafka.Writer
	// life is cancelled by Close: it ends the waits that must not outlive
	// the bus (a commit, a retry delay) but not the handlers' contexts.
	life     context.Context
	shutdown context.CancelFunc

	mu      sync.Mutex
	closed  bool
	topics  map[string]bool
	readers map[*kafka.Reader]bool
}

var _ bus.Bus = (*Bus)(nil)

// Connect makes a bus on the cluster whose bootstrap brokers are given
// ("host:9092"), retrying the first contact with backoff until
// cfg.ConnectTimeout, so a service may start before its broker. The first
// contact goes through TLS and SASL as configured: credentials the broker
// refuses, a SASL mechanism it does not offer or a TLS handshake that
// fails end Connect at once, with an error that says so.
func Connect(ctx context.Context, brokers []string, cfg Config) (*Bus, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(brokers) == 0 {
		return nil, errors.New("kafkabus: no brokers")
	}
	dial := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	transport := &kafka.Transport{
		ClientID:    cfg.Name,
		Dial:        dial.DialContext,
		DialTimeout: 10 * time.Second,
		MetadataTTL: cfg.MetadataTTL,
		TLS:         cfg.TLS,
		SASL:        cfg.SASL,
	}
	life, shutdown := context.WithCancel(context.Background())
	b := &Bus{
		cfg:       cfg,
		brokers:   brokers,
		transport: transport,
		client:    &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport},
		dialer: &kafka.Dialer{
			ClientID:      cfg.Name,
			Timeout:       10 * time.Second,
			DualStack:     true,
			TLS:           cfg.TLS,
			SASLMechanism: cfg.SASL,
		},
		w: &kafka.Writer{
			Addr:         kafka.TCP(brokers...),
			Balancer:     kafka.Murmur2Balancer{}, // the Java client's: same key, same partition
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: cfg.BatchTimeout,
			Transport:    transport,
			ErrorLogger:  errorLogger(cfg.Logger),
		},
		life:     life,
		shutdown: shutdown,
		topics:   map[string]bool{},
		readers:  map[*kafka.Reader]bool{},
	}
	retry := backoff.WithContext(backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second),
		backoff.WithMaxElapsedTime(cfg.ConnectTimeout)), ctx)
	err := backoff.Retry(func() error {
		// An attempt ends with the connect timeout too: a broker that
		// takes the connection but never answers (a TLS handshake with a
		// plaintext listener) must not hold Connect longer.
		mctx, cancel := context.WithTimeout(ctx, min(10*time.Second, cfg.ConnectTimeout))
		defer cancel()
		return b.check(mctx)
	}, retry)
	if err != nil {
		b.Close()
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return nil, fatal
		}
		hint := ""
		switch {
		case cfg.TLS == nil && cfg.SASL == nil && closedByPeer(err):
			hint = " (the broker closed the connection: does it want TLS or SASL?)"
		case cfg.TLS != nil && (closedByPeer(err) || errors.Is(err, context.DeadlineExceeded)):
			hint = " (does the broker speak TLS on that port?)"
		}
		return nil, fmt.Errorf("kafkabus: connect %s: %w%s", strings.Join(brokers, ","), err, hint)
	}
	return b, nil
}

// check makes the first contact: a connection through the consumers'
// dialer (TLS handshake, SASL authentication) to the first broker that
// answers, a metadata request on it, and one through the producer's
// transport. An error that waiting cannot cure is a *fatalError.
func (b *Bus) check(ctx context.Context) error {
	var errs []error
	for _, addr := range b.brokers {
		conn, err := b.dialer.DialContext(ctx, "tcp", addr)
		if err == nil {
			if d, ok := ctx.Deadline(); ok {
				conn.SetDeadline(d)
			}
			_, err = conn.Brokers() // a metadata request
			conn.Close()
		}
		if err != nil {
			if f := b.classify(addr, err); f != nil {
				return backoff.Permanent(f)
			}
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		_, err = b.client.Metadata(ctx, &kafka.MetadataRequest{})
		if f := b.classify(addr, err); f != nil {
			return backoff.Permanent(f)
		}
		return err
	}
	return joined(errs)
}

// joined is the errors of several brokers, on one line for the logs.
type joined []error

func (e joined) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e joined) Unwrap() []error { return e }

// fatalError is a first contact's failure that waiting cannot cure.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// classify returns a *fatalError for the errors of a first contact with
// addr that say the configuration is wrong, not that the broker is away.
func (b *Bus) classify(addr string, err error) *fatalError {
	if err == nil {
		return nil
	}
	mech := ""
	if b.cfg.SASL != nil {
		mech = b.cfg.SASL.Name()
	}
	var (
		unknownCA x509.UnknownAuthorityError
		badHost   x509.HostnameError
		badCert   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		notTLS    tls.RecordHeaderError
		op        *net.OpError
	)
	fatalf := func(format string, args ...any) *fatalError { return &fatalError{fmt.Errorf(format, args...)} }
	switch {
	case errors.Is(err, kafka.SASLAuthenticationFailed):
		return fatalf("kafkabus: SASL authentication failed: the broker at %s refused the %s credentials (wrong user or password?): %w", addr, mech, err)
	case errors.Is(err, kafka.UnsupportedSASLMechanism):
		return fatalf("kafkabus: SASL authentication failed: the broker at %s does not offer %s: %w", addr, mech, err)
	case errors.Is(err, kafka.IllegalSASLState):
		return fatalf("kafkabus: SASL authentication failed at %s: %w", addr, err)
	case b.cfg.TLS == nil:
		// Without TLS, none of what follows.
	case errors.As(err, &notTLS):
		return fatalf("kafkabus: TLS handshake with %s failed: the broker does not speak TLS there: %w", addr, err)
	case errors.As(err, &unknownCA), errors.As(err, &badHost), errors.As(err, &badCert), errors.As(err, &verify):
		return fatalf("kafkabus: TLS handshake with %s failed: %w", addr, err)
	case errors.As(err, &op) && op.Op == "remote error":
		// A TLS alert from the broker: it refused our certificate, or
		// the handshake's terms.
		return fatalf("kafkabus: TLS handshake with %s failed: %w", addr, err)
	}
	return nil
}

// closedByPeer reports an error of a connection the broker closed.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// errorLogger passes kafka-go's complaints (retried by kafka-go itself) on
// at debug level: they name brokers and topics, never payloads.
func errorLogger(l *slog.Logger) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		l.Debug("kafka client", "detail", fmt.Sprintf(format, args...))
	})
}

// Close closes the producer and every consumer without waiting for the
// handlers in flight: their messages are not committed, so the groups'
// next members get them. Consume calls then return [bus.ErrClosed].
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.shutdown()
	readers := b.readers
	b.readers = nil
	b.mu.Unlock()
	var wg sync.WaitGroup
	for r := range readers {
		wg.Add(1)
		go func() { defer wg.Done(); r.Close() }()
	}
	wg.Wait()
	err := b.w.Close()
	b.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("kafkabus: close: %w", err)
	}
	return nil
}

func (b *Bus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// topicName checks a bus topic and returns its Kafka topic.
func (b *Bus) topicName(topic string) (string, error) {
	if _, err := bus.Kind(topic); err != nil {
		return "", err
	}
	name := b.cfg.Prefix + "." + topic
	if len(name) > maxTopicLen {
		return "", fmt.Errorf("%w: %q is longer than Kafka allows", bus.ErrBadTopic, topic)
	}
	return name, nil
}

// ensureTopic creates the Kafka topic if it is missing (an operator may
// have made it, with rights to create none) and waits until the cluster's
// metadata lists its partitions: a consumer group formed before that would
// be assigned nothing.
func (b *Bus) ensureTopic(ctx context.Context, name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.topics[name] {
		return nil
	}
	// Bounded: other topics' publishers wait on b.mu meanwhile.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	exists := func() bool {
		md, err := b.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{name}})
		return err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) > 0
	}
	if !exists() {
		resp, err := b.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic:             name,
			NumPartitions:     b.cfg.Partitions,
			ReplicationFactor: b.cfg.ReplicationFactor,
			ConfigEntries: []kafka.ConfigEntry{
				{ConfigName: "retention.ms", ConfigValue: strconv.FormatInt(b.cfg.Retention.Milliseconds(), 10)},
				{ConfigName: "cleanup.policy", ConfigValue: "delete"},
			},
		}}})
		if err == nil {
			err = resp.Errors[name]
		}
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("kafkabus: create topic %s: %w", name, err)
		}
		for wait := 20 * time.Millisecond; !exists(); wait = min(2*wait, time.Second) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("kafkabus: topic %s: %w", name, ctx.Err())
			case <-time.After(wait):
			}
		}
	}
	b.topics[name] = true
	return nil
}

// Publish writes msg to the topic and returns once every in-sync replica
// has it.
func (b *Bus) Publish(ctx context.Context, topic string, msg *bus.Message) error {
	km, err := b.message(ctx, topic, msg)
	if err != nil {
		return err
	}
	if err := b.w.WriteMessages(ctx, km); err != nil {
		return b.publishError(topic, err)
	}
	return nil
}

// PublishBatch implements [bus.BatchPublisher]: one write of every
// message (kafka-go batches them per partition), each acknowledged by
// every in-sync replica.
func (b *Bus) PublishBatch(ctx context.Context, msgs []bus.Outgoing) []error {
	errs := make([]error, len(msgs))
	var kms []kafka.Message
	var at []int // index in msgs of each of kms
	for i, o := range msgs {
		km, err := b.message(ctx, o.Topic, o.Msg)
		if err != nil {
			errs[i] = err
			continue
		}
		kms, at = append(kms, km), append(at, i)
	}
	if len(kms) == 0 {
		return errs
	}
	err := b.w.WriteMessages(ctx, kms...)
	var each kafka.WriteErrors
	for j, i := range at {
		switch {
		case err == nil:
		case errors.As(err, &each) && len(each) == len(kms):
			if each[j] != nil {
				errs[i] = b.publishError(msgs[i].Topic, each[j])
			}
		default:
			errs[i] = b.publishError(msgs[i].Topic, err)
		}
	}
	return errs
}

func (b *Bus) publishError(topic string, err error) error {
	if b.isClosed() {
		err = bus.ErrClosed
	}
	return fmt.Errorf("kafkabus: publish %s: %w", topic, err)
}

// message is msg as the Kafka message written to topic (made first if
// need be).
func (b *Bus) message(ctx context.Context, topic string, msg *bus.Message) (kafka.Message, error) {
	name, err := b.topicName(topic)
	if err != nil {
		return kafka.Message{}, err
	}
	if b.isClosed() {
		return kafka.Message{}, fmt.Errorf("kafkabus: publish %s: %w", topic, bus.ErrClosed)
	}
	if err := b.ensureTopic(ctx, name); err != nil {
		return kafka.Message{}, err
	}
	t := msg.Time
	if t.IsZero() {
		t = time.Now()
	}
	km := kafka.Message{
		Topic: name,
		Value: msg.Data,
		Time:  t,
		Headers: []kafka.Header{
			{Key: bus.HeaderID, Value: []byte(msg.ID)},
			{Key: bus.HeaderType, Value: []byte(msg.Type)},
			{Key: bus.HeaderSource, Value: []byte(msg.Source)},
			{Key: bus.HeaderTime, Value: []byte(t.UTC().Format(time.RFC3339Nano))},
		},
	}
	if msg.Key != "" {
		km.Key = []byte(msg.Key)
		km.Headers = append(km.Headers, kafka.Header{Key: bus.HeaderKey, Value: km.Key})
	}
	return km, nil
}

// Consume runs a member of the consumer group "<prefix>.<group>.<topic>".
// A broker that is away is waited for (kafka-go rejoins the group by
// itself; Consume sets the member up again with backoff if it has to).
// Consume returns only when ctx is cancelled (nil), the topic is invalid
// ([bus.ErrBadTopic]), the group name is one Kafka refuses, or the bus was
// closed ([bus.ErrClosed]).
func (b *Bus) Consume(ctx context.Context, topic, group string, h bus.Handler) error {
	name, err := b.topicName(topic)
	if err != nil {
		return err
	}
	if group == "" || !validName(group) {
		return fmt.Errorf("kafkabus: group %q must be letters, digits, '.', '-' and '_'", group)
	}
	groupID := b.cfg.Prefix + "." + group + "." + topic
	consume := func(ctx context.Context) (bool, error) { return b.consume(ctx, name, groupID, h) }
	return busadapter.Resume(ctx, b.cfg.Logger, topic, group, b.life.Done(), consume, func(error) error {
		if b.isClosed() {
			return bus.ErrClosed
		}
		return nil
	})
}

// consume runs one group member until ctx is cancelled or something
// breaks; it reports whether it handled any message.
func (b *Bus) consume(ctx context.Context, topic, groupID string, h bus.Handler) (handled bool, err error) {
	if err := b.ensureTopic(ctx, topic); err != nil {
		return false, err
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:                b.brokers,
		GroupID:                groupID,
		Topic:                  topic,
		Dialer:                 b.dialer,
		MaxBytes:               10 << 20,
		MaxWait:                b.cfg.MaxWait,
		HeartbeatInterval:      b.cfg.HeartbeatInterval,
		SessionTimeout:         b.cfg.SessionTimeout,
		RebalanceTimeout:       b.cfg.RebalanceTimeout,
		JoinGroupBackoff:       b.cfg.JoinGroupBackoff,
		WatchPartitionChanges:  true, // an operator may add partitions
		PartitionWatchInterval: 5 * time.Second,
		StartOffset:            kafka.FirstOffset, // a new group gets what was published before it
		CommitInterval:         0,                 // commit synchronously, after the handler
		ErrorLogger:            errorLogger(b.cfg.Logger),
	})
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		r.Close()
		return false, bus.ErrClosed
	}
	b.readers[r] = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		mine := b.readers[r] // else Close has it
		delete(b.readers, r)
		b.mu.Unlock()
		if mine {
			r.Close() // leaves the group at once, so its partitions move now
		}
	}()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return handled, fmt.Errorf("kafkabus: fetch %s: %w", topic, err)
		}
		if ctx.Err() != nil {
			return handled, nil // fetched as we stopped: the next member gets it
		}
		if err := b.handle(ctx, r, m, h); err != nil {
			return handled, err
		}
		handled = true
	}
}

// handle calls h until it succeeds or fails for good, then commits past
// the message. Retrying in place holds the partition: the messages behind
// this one (the same request's, among others) wait for it.
func (b *Bus) handle(ctx context.Context, r *kafka.Reader, m kafka.Message, h bus.Handler) error {
	for delivery := 1; ; delivery++ {
		err := h(ctx, decode(m, delivery))
		if err != nil && !bus.IsPermanent(err) {
			if ctx.Err() != nil {
				// Cut short by the consumer stopping: not committed, the
				// group's next member handles it.
				return ctx.Err()
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-b.life.Done():
				return bus.ErrClosed
			case <-time.After(b.cfg.RetryDelay):
				continue
			}
		}
		// Committed even if ctx was cancelled meanwhile: the work is done.
		// Not after Close, though: kafka-go may queue the commit of a
		// closed reader and never answer.
		cctx, cancel := context.WithTimeout(b.life, b.cfg.CommitTimeout)
		defer cancel()
		if err := r.CommitMessages(cctx, m); err != nil {
			return fmt.Errorf("kafkabus: commit %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
		}
		return nil
	}
}

func decode(m kafka.Message, delivery int) *bus.Message {
	msg := &bus.Message{Time: m.Time, Data: bytes.Clone(m.Value), Delivery: delivery}
	for _, h := range m.Headers {
		switch h.Key {
		case bus.HeaderID:
			msg.ID = string(h.Value)
		case bus.HeaderType:
			msg.Type = string(h.Value)
		case bus.HeaderSource:
			msg.Source = string(h.Value)
		case bus.HeaderKey:
			msg.Key = string(h.Value)
		case bus.HeaderTime:
			if t, err := time.Parse(time.RFC3339Nano, string(h.Value)); err == nil {
				msg.Time = t
			}
		}
	}
	return msg
}

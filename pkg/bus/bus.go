// Package bus is the small interface Lethe's services use to talk over a
// message broker. Adapters live in subpackages (natsbus, kafkabus) so that
// this package imports no broker client; busurl picks one from a URL,
// busadapter holds what adapters share, and bustest is the conformance
// suite every adapter passes.
//
// Delivery is at least once. Effects are made exactly once by the callers:
// publishers use deterministic message ids (a broker that de-duplicates by id
// drops a re-publish) and handlers are idempotent.
package bus

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// CloudEvents binary-mode headers: every adapter carries a [Message]'s
// attributes under these names.
const (
	HeaderID     = "ce-id"
	HeaderType   = "ce-type"
	HeaderSource = "ce-source"
	HeaderTime   = "ce-time" // RFC 3339 with nanoseconds, UTC
	HeaderKey    = "lethe-key"
)

// Message is one event in CloudEvents binary mode: ID, Type, Source and Time
// travel as the headers ce-id, ce-type, ce-source and ce-time; Data is the
// protobuf payload.
type Message struct {
	// ID is the CloudEvents id and the broker's de-duplication id. Publishers
	// derive it from what the message means (a task id and attempt), never at
	// random, so a re-publish after a crash is recognised as the same message.
	ID     string
	Type   string
	Source string
	Time   time.Time
	// Key keeps related messages in order (a request id).
	Key  string
	Data []byte
	// Delivery counts deliveries of this message, from 1. Set on consumed
	// messages only. Brokers that keep the count (NATS) count the deliveries
	// to every member of the group; others (Kafka) count those to this
	// consumer, so a message taken over from a consumer that died starts at
	// 1 again.
	Delivery int
}

// Publisher publishes messages to a topic. Topics are dot-separated names
// whose first element is the kind of message ("task.accounts",
// "receipt.accounts", "event.account-deleted").
type Publisher interface {
	// Publish returns once the broker has stored the message durably.
	// Publish must be safe for concurrent use.
	Publish(ctx context.Context, topic string, msg *Message) error
}

// Outgoing is a message and the topic it goes to.
type Outgoing struct {
	Topic string
	Msg   *Message
}

// BatchPublisher is a [Publisher] that keeps many messages in flight at
// once, so that a batch costs about one round trip to the broker rather
// than one per message (the orchestrator's outbox relay uses it when the
// bus has it).
type BatchPublisher interface {
	// PublishBatch publishes every message, all in flight together, and
	// returns an error per message: nil once the broker stored it
	// durably, as Publish. Messages to one topic are sent in order.
	PublishBatch(ctx context.Context, msgs []Outgoing) []error
}

// Handler handles one consumed message. A nil error acknowledges it. An error
// asks for redelivery after a delay, except a [Permanent] error, which drops
// the message (it would fail the same way every time).
type Handler func(ctx context.Context, msg *Message) error

// Consumer delivers the messages of a topic to a durable named group: a
// group's position survives restarts, and each message goes to one member.
// A group that starts after messages were published gets them too.
type Consumer interface {
	// Consume calls h for each message, one at a time unless the adapter
	// is set to hand out more at once (natsbus.Config.Handlers), until ctx is
	// cancelled, then waits for the handler in flight to return, and
	// returns nil. A broker that is away is waited for. Consume returns an
	// error only if it cannot work at all: [ErrBadTopic], [ErrGroupConflict],
	// or [ErrClosed] once the bus was closed.
	Consume(ctx context.Context, topic, group string, h Handler) error
}

// Bus is what a service needs from a broker.
type Bus interface {
	Publisher
	Consumer
	// Close releases the connection without waiting for handlers in
	// flight: what they leave unacknowledged is redelivered, as after a
	// crash. Consume calls then return [ErrClosed]. Close may be called
	// more than once.
	Close() error
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one a redelivery cannot fix (a message that does
// not decode, say): the consumer drops the message instead of redelivering it.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err was marked with [Permanent].
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Errors of every adapter; errors.Is finds them through wrapping.
var (
	// ErrBadTopic is returned for a topic that is not "kind.name".
	ErrBadTopic = errors.New("bus: topic must look like kind.name, elements of letters, digits, '-' and '_'")
	// ErrClosed is returned by a bus that was closed.
	ErrClosed = errors.New("bus: closed")
	// ErrGroupConflict is returned by Consume when the broker allows one
	// consuming group per topic (NATS work-queue streams) and another group
	// already consumes the topic.
	ErrGroupConflict = errors.New("bus: another group already consumes this topic")
)

// Kind returns the first element of a topic ("task" for "task.accounts"),
// or [ErrBadTopic] if the topic is not at least two dot-separated elements
// of ASCII letters, digits, '-' and '_': names every broker accepts as they
// are (no NATS wildcards, nothing Kafka refuses in a topic name).
func Kind(topic string) (string, error) {
	kind, elems := "", 0
	start := 0
	for i := 0; i <= len(topic); i++ {
		if i < len(topic) && topic[i] != '.' {
			if !topicChar(topic[i]) {
				return "", fmt.Errorf("%w: %q", ErrBadTopic, topic)
			}
			continue
		}
		if i == start { // empty element
			return "", fmt.Errorf("%w: %q", ErrBadTopic, topic)
		}
		if elems == 0 {
			kind = topic[:i]
		}
		elems++
		start = i + 1
	}
	if elems < 2 {
		return "", fmt.Errorf("%w: %q", ErrBadTopic, topic)
	}
	return kind, nil
}

func topicChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

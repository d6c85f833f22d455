// Package bus is the small interface Lethe's services use to talk over a
// message broker. Adapters live in subpackages (natsbus) so that this package
// imports no broker client.
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
	// Delivery counts deliveries of this message by the broker, from 1. Set on
	// consumed messages only.
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

// Handler handles one consumed message. A nil error acknowledges it. An error
// asks for redelivery after a delay, except a [Permanent] error, which drops
// the message (it would fail the same way every time).
type Handler func(ctx context.Context, msg *Message) error

// Consumer delivers the messages of a topic to a durable named group: a
// group's position survives restarts, and each message goes to one member.
type Consumer interface {
	// Consume calls h for each message until ctx is cancelled, then waits for
	// the handler in flight to return. It returns nil after cancellation and
	// an error if it could not start or the subscription broke.
	Consume(ctx context.Context, topic, group string, h Handler) error
}

// Bus is what a service needs from a broker.
type Bus interface {
	Publisher
	Consumer
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

// ErrBadTopic is returned for a topic that is not "kind.name".
var ErrBadTopic = errors.New("bus: topic must look like kind.name")

// Kind returns the first element of a topic ("task" for "task.accounts").
func Kind(topic string) (string, error) {
	for i := 0; i < len(topic); i++ {
		if topic[i] == '.' {
			if i == 0 || i == len(topic)-1 {
				break
			}
			return topic[:i], nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrBadTopic, topic)
}

package busadapter

import (
	"context"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/lethe-dev/lethe/pkg/bus"
)

// Resume is the loop both adapters' Consume run to ride out broker trouble:
// it runs consume again whenever it breaks, after a backoff wait that starts
// over once a run has handled messages. It returns nil when ctx is
// cancelled, [bus.ErrClosed] when closed is closed (nil: never), and the error
// giveUp returns for a run's error when that is not nil (a conflict no
// retry can mend).
func Resume(ctx context.Context, log *slog.Logger, topic, group string, closed <-chan struct{},
	consume func(context.Context) (handled bool, err error), giveUp func(error) error) error {
	retry := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(5*time.Second),
		backoff.WithMaxElapsedTime(0))
	for {
		handled, err := consume(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if stop := giveUp(err); stop != nil {
			return stop
		}
		if handled {
			retry.Reset()
		}
		wait := retry.NextBackOff()
		log.Warn("consumer interrupted, setting it up again", "topic", topic, "group", group, "wait", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-closed:
			return bus.ErrClosed
		case <-time.After(wait):
		}
	}
}

package mailer

import (
	"context"
	"slices"
	"sync"
)

// Memory is a Sender that keeps the mails in memory, one per notice: the
// demo stack's (`make run` mails no one) and the tests'.
type Memory struct {
	mu    sync.Mutex
	mails []Mail
}

// Send keeps m, once per notice.
func (s *Memory) Send(_ context.Context, m Mail) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.ContainsFunc(s.mails, func(o Mail) bool { return o.NoticeID == m.NoticeID }) {
		s.mails = append(s.mails, m)
	}
	return nil
}

// Mails are the mails kept so far.
func (s *Memory) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mails)
}

package mailer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strings"
	"time"
)

// SMTP sends mails through an SMTP server (net/smtp: STARTTLS when the
// server offers it, PLAIN authentication when the URL has a user, which
// net/smtp allows only over TLS or to localhost).
type SMTP struct {
	Addr string // host:port
	From string
	Auth smtp.Auth // nil: none
}

// ParseSMTP reads smtp://[user:password@]host[:port] (port 25 by default).
func ParseSMTP(rawURL, from string) (*SMTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "smtp" || u.Hostname() == "" {
		return nil, errors.New("mailer: want --smtp smtp://[user:password@]host[:port]")
	}
	if from == "" || !strings.Contains(from, "@") {
		return nil, errors.New("mailer: --from must be an email address")
	}
	port := u.Port()
	if port == "" {
		port = "25"
	}
	s := &SMTP{Addr: net.JoinHostPort(u.Hostname(), port), From: from}
	if u.User != nil {
		pass, _ := u.User.Password()
		s.Auth = smtp.PlainAuth("", u.User.Username(), pass, u.Hostname())
	}
	return s, nil
}

// Send sends m. Its errors name the server, not the person.
func (s *SMTP) Send(ctx context.Context, m Mail) error {
	if strings.ContainsAny(m.To, "\r\n") || strings.ContainsAny(m.Subject, "\r\n") {
		return errors.New("smtp: a header with a line break")
	}
	msg := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@lethe>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s",
		s.From, m.To, m.Subject, time.Now().UTC().Format(time.RFC1123Z), strings.ReplaceAll(m.NoticeID, ":", "."), strings.ReplaceAll(m.Body, "\n", "\r\n"))
	done := make(chan error, 1)
	go func() { done <- smtp.SendMail(s.Addr, s.Auth, s.From, []string{m.To}, []byte(msg)) }()
	select {
	case err := <-done:
		// The server's own words may quote the recipient: only its code.
		var tp *textproto.Error
		switch {
		case errors.As(err, &tp):
			return fmt.Errorf("smtp %s answered %d", s.Addr, tp.Code)
		case err != nil:
			return fmt.Errorf("smtp %s: unreachable or refused the session", s.Addr)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

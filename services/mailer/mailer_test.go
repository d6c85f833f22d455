package mailer

import (
	"context"
	"errors"
	"net"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/events"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/piitest"
	"github.com/lethe-dev/lethe/pkg/proof"
)

const email = "person-0042@example.com"

type fixture struct {
	bus    bus.Bus
	seal   *proof.SealKey
	signer *proof.Signer
	acks   chan *lethev1.NoticeDelivered
	logs   *piitest.Capture
}

// start runs a mailer with sender on an embedded NATS server and collects
// the acknowledgements it publishes.
func start(t *testing.T, sender Sender) *fixture {
	t.Helper()
	srv, err := natsbus.StartEmbedded(t.TempDir(), "127.0.0.1", -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	b, err := natsbus.Connect(t.Context(), srv.URL(), natsbus.Config{Name: "mailer-test", AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	dir := t.TempDir()
	f := &fixture{bus: b, acks: make(chan *lethev1.NoticeDelivered, 8), logs: &piitest.Capture{}}
	if f.signer, err = proof.LoadSigner(filepath.Join(dir, "signing.key"), proof.Mailer, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if f.seal, err = proof.LoadOrCreateSealKey(filepath.Join(dir, "seal.key")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		Run(ctx, Config{Bus: b, Seal: f.seal, Signer: f.signer, Sender: sender, Logger: f.logs.Logger()})
	}()
	go func() {
		defer wg.Done()
		b.Consume(ctx, events.TopicNoticeDelivered, "orchestrator", func(_ context.Context, m *bus.Message) error {
			ack := &lethev1.NoticeDelivered{}
			if err := events.Decode(m, ack, events.TypeNoticeDelivered); err != nil {
				return err
			}
			f.acks <- ack
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return f
}

// publish publishes the extension notice of request id, its subject sealed to to.
func (f *fixture) publish(t *testing.T, id string, to *[32]byte) {
	t.Helper()
	sealed, err := proof.SealSubject(to, &lethev1.Subject{Email: email})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	n := &lethev1.ExtensionNotice{RequestId: id, Tenant: "demo", SealedSubject: sealed, ReceivedAt: timestamppb.New(now),
		OriginalDeadline: timestamppb.New(now.AddDate(0, 1, 0)), Deadline: timestamppb.New(now.AddDate(0, 3, 0)),
		Reason: "14 systems, 3 of them archives", ExtendedAt: timestamppb.New(now)}
	m, err := events.ExtensionNoticeMessage(n, "test", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.bus.Publish(t.Context(), events.TopicNotices, m); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) ack(t *testing.T) *lethev1.NoticeDelivered {
	t.Helper()
	select {
	case a := <-f.acks:
		return a
	case <-time.After(20 * time.Second):
		t.Fatal("no acknowledgement")
		return nil
	}
}

// A notice sealed to the mailer is mailed to the person it names, then
// acknowledged with a signature the mailer's registered key verifies; one
// sealed to another key is mailed to no one and acknowledged by no one.
func TestMailsThenAcknowledges(t *testing.T) {
	box := &Memory{}
	f := start(t, box)
	stranger, err := proof.LoadOrCreateSealKey(filepath.Join(t.TempDir(), "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	f.publish(t, "req_other", stranger.Public)
	f.publish(t, "req_1", f.seal.Public)
	a := f.ack(t)
	if a.GetNoticeId() != "extension:req_1" || a.GetRequestId() != "req_1" {
		t.Fatalf("acknowledgement %v", a)
	}
	var ks proof.KeySet
	ks.Add(f.signer.Key)
	if err := proof.VerifyNoticeDelivered(ks, a, time.Now()); err != nil {
		t.Fatalf("the acknowledgement does not verify: %v", err)
	}
	a.RequestId = "req_2"
	if err := proof.VerifyNoticeDelivered(ks, a, time.Now()); err == nil {
		t.Fatal("a changed acknowledgement verifies")
	}
	mails := box.Mails()
	if len(mails) != 1 || mails[0].To != email || !strings.Contains(mails[0].Body, "14 systems, 3 of them archives") ||
		!strings.Contains(mails[0].Body, "2 June 2026") || !strings.Contains(mails[0].Subject, "req_1") {
		t.Fatalf("mails %+v", mails)
	}
	select {
	case a := <-f.acks:
		t.Fatalf("a second acknowledgement: %v", a)
	case <-time.After(500 * time.Millisecond):
	}
	f.logs.NoneOf(t, email)
}

// flaky fails its first sends, as a mail server that is down.
type flaky struct {
	Memory
	fails atomic.Int32
}

func (s *flaky) Send(ctx context.Context, m Mail) error {
	if s.fails.Add(-1) >= 0 {
		return errors.New("smtp 127.0.0.1:25: unreachable or refused the session")
	}
	return s.Memory.Send(ctx, m)
}

// A mail that cannot be sent is not acknowledged; the notice comes again
// and is acknowledged once sent.
func TestUnsentIsNotAcknowledged(t *testing.T) {
	s := &flaky{}
	s.fails.Store(2)
	f := start(t, s)
	f.publish(t, "req_1", f.seal.Public)
	a := f.ack(t)
	if a.GetNoticeId() != "extension:req_1" || s.fails.Load() >= 0 || len(s.Mails()) != 1 {
		t.Fatalf("after two failures: ack %v, fails left %d, mails %d", a, s.fails.Load(), len(s.Mails()))
	}
}

// fakeSMTP is an SMTP server the test starts (the edge Lethe does not own):
// it records each message's recipients and data.
func fakeSMTP(t *testing.T) (addr string, got chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tp := textproto.NewConn(c)
				tp.PrintfLine("220 fake ESMTP")
				var rcpt string
				for {
					line, err := tp.ReadLine()
					if err != nil {
						return
					}
					cmd := strings.ToUpper(strings.Fields(line + " x")[0])
					switch cmd {
					case "EHLO", "HELO":
						tp.PrintfLine("250 fake")
					case "MAIL":
						tp.PrintfLine("250 ok")
					case "RCPT":
						rcpt = line
						tp.PrintfLine("250 ok")
					case "DATA":
						tp.PrintfLine("354 go on")
						data, err := tp.ReadDotBytes()
						if err != nil {
							return
						}
						got <- rcpt + "\n" + string(data)
						tp.PrintfLine("250 queued")
					case "QUIT":
						tp.PrintfLine("221 bye")
						return
					default:
						tp.PrintfLine("502 no")
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), got
}

func TestSMTP(t *testing.T) {
	addr, got := fakeSMTP(t)
	s, err := ParseSMTP("smtp://"+addr, "privacy@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), Mail{NoticeID: "extension:req_1", To: email, Subject: "Your request", Body: "line 1\nline 2\n"}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if !strings.Contains(m, "RCPT TO:<"+email+">") || !strings.Contains(m, "Subject: Your request") || !strings.Contains(m, "line 1\nline 2") {
			t.Fatalf("the server got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no mail")
	}
	// Header injection and bad configuration are refused.
	if err := s.Send(t.Context(), Mail{To: email + "\r\nBcc: x@example.org"}); err == nil {
		t.Error("a recipient with a line break was sent")
	}
	for _, tt := range []struct{ url, from string }{{"http://" + addr, "a@b"}, {"smtp://", "a@b"}, {"smtp://" + addr, ""}, {"smtp://" + addr, "nobody"}} {
		if _, err := ParseSMTP(tt.url, tt.from); err == nil {
			t.Errorf("ParseSMTP(%q, %q) accepted", tt.url, tt.from)
		}
	}
	// A server that refuses: the error carries its code, not the person.
	s.Addr = "127.0.0.1:1"
	if err := s.Send(t.Context(), Mail{To: email, Subject: "x"}); err == nil || strings.Contains(err.Error(), email) {
		t.Errorf("send to a closed port: %v", err)
	}
}

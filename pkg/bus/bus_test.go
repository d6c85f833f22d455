package bus

import (
	"errors"
	"fmt"
	"testing"
)

func TestKind(t *testing.T) {
	for _, tc := range []struct {
		topic, kind string
	}{
		{"task.accounts", "task"},
		{"receipt.v1", "receipt"},
		{"event.account-deleted", "event"},
		{"dead.email_analytics", "dead"},
		{"test.a.b", "test"},
		{"", ""},
		{"task", ""},
		{".x", ""},
		{"x.", ""},
		{"x..y", ""},
		{"task.*", ""},
		{"task.>", ""},
		{"task.a b", ""},
		{"task.a/b", ""},
		{"tâche.x", ""},
	} {
		kind, err := Kind(tc.topic)
		if tc.kind == "" {
			if !errors.Is(err, ErrBadTopic) {
				t.Errorf("Kind(%q) = %q, %v; want ErrBadTopic", tc.topic, kind, err)
			}
			continue
		}
		if err != nil || kind != tc.kind {
			t.Errorf("Kind(%q) = %q, %v; want %q", tc.topic, kind, err, tc.kind)
		}
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("cannot decode")
	err := fmt.Errorf("handle: %w", Permanent(base))
	if !IsPermanent(err) || !errors.Is(err, base) {
		t.Fatalf("wrapped permanent error lost its mark or its cause: %v", err)
	}
	if IsPermanent(base) || IsPermanent(nil) {
		t.Fatal("an unmarked error is permanent")
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:s3cret@a:4222", "nats://***@a:4222"},
		{"nats://tok3n@a:4222,nats://u:p4ss@b:4222", "nats://***@a:4222,nats://***@b:4222"},
		{"nats://u:p@ss@a:4222", "nats://***@a:4222"},
		{"u:s3cret@a:4222,b:4222", "***@a:4222,b:4222"},
		{"kafka://a:9092,b:9092", "kafka://a:9092,b:9092"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

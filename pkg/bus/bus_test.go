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

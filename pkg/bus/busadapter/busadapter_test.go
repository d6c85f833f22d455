package busadapter

import "testing"

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

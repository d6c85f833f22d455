package envflag

import (
	"os"
	"testing"
)

func TestOr(t *testing.T) {
	const name = "LETHE_ENVFLAG_TEST"
	for _, tc := range []struct {
		name, value string
		set         bool
		want        string
	}{
		{"unset", "", false, "def"},
		{"empty", "", true, "def"},
		{"set", "nats://a:4222", true, "nats://a:4222"},
		{"blank is a value", " ", true, " "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(name, tc.value) // restored when the test ends
			if !tc.set {
				os.Unsetenv(name)
			}
			if got := Or(name, "def"); got != tc.want {
				t.Errorf("Or(%q, %q) = %q, want %q", name, "def", got, tc.want)
			}
		})
	}
}

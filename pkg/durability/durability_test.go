package durability_test

import (
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/durability"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]durability.Mode{"strict": durability.Strict, "fast": durability.Fast, " FAST ": durability.Fast, "Strict": durability.Strict} {
		got, err := durability.Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
		if g, _ := durability.Parse(got.String()); g != got {
			t.Errorf("Parse(%q.String()) = %v", got, g)
		}
	}
	for _, in := range []string{"", "always", "normal", "full", "strictly"} {
		_, err := durability.Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) took it", in)
			continue
		}
		if !strings.Contains(err.Error(), "strict or fast") {
			t.Errorf("Parse(%q): %q does not name the allowed values", in, err)
		}
	}
}

func TestZeroIsStrict(t *testing.T) {
	var m durability.Mode
	if m != durability.Strict || m.IsFast() || m.String() != "strict" {
		t.Errorf("the zero mode is %v", m)
	}
	if durability.Mode(7).IsFast() {
		t.Error("an unknown mode is fast")
	}
}

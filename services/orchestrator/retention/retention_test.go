package retention_test

import (
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/services/orchestrator/retention"
)

func TestDemo(t *testing.T) {
	ps, err := retention.Parse("demo.yaml", retention.Demo)
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.Check([]string{"accounts", "billing", "emailanalytics", "recordings", "subprocessors"}); err != nil {
		t.Fatal(err)
	}
	if len(ps.List) != 6 {
		t.Fatalf("%d demo policies, want the six purposes of the seeds", len(ps.List))
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		cutoff time.Time
	}{
		{"audience_measurement", time.Date(2025, 11, 1, 12, 0, 0, 0, time.UTC)},
		{"authorities", time.Date(2025, 12, 1, 12, 0, 0, 0, time.UTC)},
		{"prospecting", time.Date(2023, 12, 1, 12, 0, 0, 0, time.UTC)},
		{"site_cookies", time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)},
		{"service_accounts", time.Date(2023, 12, 1, 12, 0, 0, 0, time.UTC)},
		{"navigation", time.Date(2022, 10, 1, 12, 0, 0, 0, time.UTC)},
	} {
		p := ps.Of("demo", tt.name)
		if p == nil {
			t.Fatalf("no policy %q", tt.name)
		}
		if got := p.Cutoff(now); !got.Equal(tt.cutoff) {
			t.Errorf("%s: cut-off %s, want %s", tt.name, got, tt.cutoff)
		}
	}
}

// A bad file is refused with an error naming the file, the line and what
// is wrong.
func TestParseRefuses(t *testing.T) {
	const good = `tenants:
  demo:
    - name: cookies
      purpose: Analytics
      legal_basis: Consent
      period: 6m
      clock: record
      systems:
        web: [cookies]
`
	tests := []struct {
		name, yaml, want string
	}{
		{"bad period", strings.Replace(good, "6m", "6 months", 1), `policies.yaml:3: tenant "demo", policy "cookies": bad period "6 months"`},
		{"bad clock", strings.Replace(good, "clock: record", "clock: birthday", 1), `policies.yaml:3: tenant "demo", policy "cookies": clock "birthday"`},
		{"misspelt key", strings.Replace(good, "legal_basis", "legal_bases", 1), `policies.yaml:3: tenant "demo": `},
		{"no purpose", strings.Replace(good, "      purpose: Analytics\n", "", 1), "no purpose"},
		{"bad name", strings.Replace(good, "name: cookies", "name: Cookies!", 1), "snake_case"},
		{"no systems", strings.Replace(good, "      systems:\n        web: [cookies]\n", "", 1), "no systems"},
		{"twice", good + strings.SplitN(good, "\n", 3)[2], `policies.yaml:10: tenant "demo": policy "cookies" is defined twice`},
		{"not yaml", "tenants: [", "policies.yaml: yaml"},
		{"unknown top key", "policies: []", `policies.yaml:1: unknown key "policies"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := retention.Parse("policies.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to say %q", err, tt.want)
			}
		})
	}
	ps, err := retention.Parse("policies.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.Check([]string{"accounts"}); err == nil || !strings.Contains(err.Error(), `policies.yaml:3:`) || !strings.Contains(err.Error(), `"web" is not registered`) {
		t.Errorf("an unknown system: %v", err)
	}
}

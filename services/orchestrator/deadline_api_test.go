package orchestrator

import (
	"fmt"
	"testing"

	"github.com/lethe-dev/lethe/pkg/deadline"
)

// Deadlines as the API computes them from received_at, per tenant policy
// (the arithmetic itself is tested day by day in pkg/deadline). Expected
// values are written out by hand.
func TestDeadlinesThroughTheAPI(t *testing.T) {
	tenants, err := deadline.ParseTenants([]byte(`
tenants:
  acme-fr:
    time_zone: Europe/Paris
    roll_to_working_day: true
    holidays: [2026-05-01, 2026-05-08, 2026-05-14, 2026-12-25]
  acme-jp:
    time_zone: Asia/Tokyo
`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Deadlines = tenants })
	tests := []struct {
		tenant, received, deadline string
		zone                       string
	}{
		{"demo", "2026-01-31T10:00:00Z", "2026-02-28T23:59:59Z", ""},
		{"demo", "2024-01-31T10:00:00Z", "2024-02-29T23:59:59Z", ""},
		{"demo", "2000-01-31T00:00:00Z", "2000-02-29T23:59:59Z", ""},
		{"demo", "2026-03-31T00:00:00Z", "2026-04-30T23:59:59Z", ""},
		{"demo", "2026-06-15T12:00:00Z", "2026-07-15T23:59:59Z", ""},
		{"demo", "2025-12-31T23:59:59Z", "2026-01-31T23:59:59Z", ""},
		// 31 Jan 23:30 UTC is 1 Feb in Paris: 1 March, a Sunday, rolls to Monday 2 March.
		{"acme-fr", "2026-01-31T23:30:00Z", "2026-03-02T22:59:59Z", "Europe/Paris"},
		// 8 May is a French public holiday (a Friday): Monday 11 May, summer time.
		{"acme-fr", "2026-04-08T09:00:00Z", "2026-05-11T21:59:59Z", "Europe/Paris"},
		{"acme-fr", "2026-10-25T12:00:00Z", "2026-11-25T22:59:59Z", "Europe/Paris"},
		// Tokyo does not roll: 31 Jan there; 28 Feb, a Saturday, stays.
		{"acme-jp", "2026-01-30T16:00:00Z", "2026-02-28T14:59:59Z", "Asia/Tokyo"},
	}
	for _, tt := range tests {
		t.Run(tt.tenant+" "+tt.received, func(t *testing.T) {
			code, out := e.do("POST", "/v1/requests", fmt.Sprintf(`{"type":"erasure","tenant":%q,"subject":{"email":"a@example.com"},"received_at":%q}`, tt.tenant, tt.received))
			if code != 202 {
				t.Fatalf("submit = %d %v", code, out)
			}
			_, view := e.do("GET", "/v1/requests/"+out["id"].(string), "")
			if view["deadline"] != tt.deadline {
				t.Errorf("deadline %v, want %s", view["deadline"], tt.deadline)
			}
			if zone, _ := view["time_zone"].(string); zone != tt.zone {
				t.Errorf("time zone %q, want %q", zone, tt.zone)
			}
		})
	}
}

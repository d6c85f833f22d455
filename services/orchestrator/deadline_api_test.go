package orchestrator

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

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
			// The preview computes the same deadline without filing anything.
			code, preview := e.do("GET", "/v1/deadline?tenant="+tt.tenant+"&received_at="+url.QueryEscape(tt.received), "")
			if code != 200 || preview["deadline"] != tt.deadline {
				t.Errorf("preview = %d %v, want deadline %s", code, preview, tt.deadline)
			}
		})
	}
}

// GET /v1/deadline answers for any date, future ones included (a request
// cannot be filed as received in the future), and files nothing.
func TestDeadlinePreview(t *testing.T) {
	tenants, err := deadline.ParseTenants([]byte(`
tenants:
  acme-fr:
    time_zone: Europe/Paris
    roll_to_working_day: true
    holidays: [2028-05-01, 2028-05-08, 2028-12-25]
`))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Deadlines = tenants })
	tests := []struct {
		query    string
		code     int
		want     map[string]any
		errorHas string
	}{
		{query: "received_at=2028-01-31T10:00:00Z", code: 200, want: map[string]any{
			"tenant": "", "deadline": "2028-02-29T23:59:59Z", "extended_deadline": "2028-04-29T23:59:59Z", "time_zone": "UTC", "roll_to_working_day": false}},
		{query: "received_at=2100-01-31T10:00:00Z", code: 200, want: map[string]any{
			"deadline": "2100-02-28T23:59:59Z", "extended_deadline": "2100-04-28T23:59:59Z"}},
		{query: "tenant=demo&received_at=2028-02-29T10:00:00Z", code: 200, want: map[string]any{
			"tenant": "demo", "deadline": "2028-03-29T23:59:59Z", "extended_deadline": "2028-05-29T23:59:59Z"}},
		// 8 April 2028 in Paris: 8 May is a holiday (a Monday), so Tuesday 9 May; extended, 8 July is a Saturday: Monday 10 July.
		{query: "tenant=acme-fr&received_at=2028-04-08T09:00:00%2B02:00", code: 200, want: map[string]any{
			"tenant": "acme-fr", "deadline": "2028-05-09T21:59:59Z", "extended_deadline": "2028-07-10T21:59:59Z",
			"time_zone": "Europe/Paris", "roll_to_working_day": true, "holidays": []any{"2028-05-01", "2028-05-08"}}},
		{query: "received_at=yesterday", code: 400, errorHas: "RFC 3339"},
		{query: "received_at=1969-12-31T00:00:00Z", code: 400, errorHas: "before 1970"},
		{query: "tenant=Not%20A%20Tenant", code: 400, errorHas: "tenant must be"},
		{query: "receivedAt=2026-01-01T00:00:00Z", code: 400, errorHas: "unknown query parameter receivedAt"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			code, out := e.do("GET", "/v1/deadline?"+tt.query, "")
			if code != tt.code {
				t.Fatalf("= %d %v, want %d", code, out, tt.code)
			}
			for k, v := range tt.want {
				if !reflect.DeepEqual(out[k], v) {
					t.Errorf("%s = %#v, want %#v", k, out[k], v)
				}
			}
			if msg, _ := out["error"].(string); !strings.Contains(msg, tt.errorHas) {
				t.Errorf("error %q, want it to say %q", msg, tt.errorHas)
			}
		})
	}
	// Without received_at it is the deadline of a request received now.
	_, now := e.do("GET", "/v1/deadline", "")
	received, _ := time.Parse(time.RFC3339, now["received_at"].(string))
	if d := time.Since(received); d < 0 || d > time.Minute {
		t.Errorf("received_at %v is not now", received)
	}
	// Filing a request received in the future is refused and points to the preview.
	code, out := e.do("POST", "/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"a@example.com"},"received_at":"2028-01-31T10:00:00Z"}`)
	if msg, _ := out["error"].(string); code != 400 || !strings.Contains(msg, "GET /v1/deadline") {
		t.Errorf("future submit = %d %v", code, out)
	}
	// Nothing was filed.
	if _, list := e.do("GET", "/v1/requests", ""); len(list["requests"].([]any)) != 0 {
		t.Errorf("the preview filed requests: %v", list["requests"])
	}
}

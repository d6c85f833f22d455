package deadline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/deadline"
)

func TestParseTenants(t *testing.T) {
	tests := []struct {
		name, file, err string
	}{
		{"empty file: everyone on the default", "", ""},
		{"zone and roll", "tenants:\n  fr: {time_zone: Europe/Paris, roll_to_working_day: true, holidays: [2026-12-25, 2026-05-01]}", ""},
		{"default for the unlisted", "default: {time_zone: America/New_York}", ""},
		{"unknown zone", "tenants:\n  x: {time_zone: Mars/Olympus}", `unknown time zone "Mars/Olympus"`},
		{"bad holiday", "tenants:\n  x: {roll_to_working_day: true, holidays: [25/12/2026]}", `holiday "25/12/2026" is not a date`},
		{"holidays without roll", "tenants:\n  x: {holidays: [2026-12-25]}", "roll_to_working_day is off"},
		{"unknown field", "tenants:\n  x: {timezone: UTC}", "field timezone not found"},
		{"not YAML", "tenants: [", "tenants file"},
		{"class", "tenants:\n  x: {class: enterprise, time_zone: Europe/Paris}", ""},
		{"class with spaces", "tenants:\n  x: {class: Big Customers}", `class "Big Customers"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := deadline.ParseTenants([]byte(tt.file))
			if tt.err == "" && err != nil {
				t.Fatalf("ParseTenants: %v", err)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("ParseTenants = %v, want an error with %q", err, tt.err)
			}
		})
	}
}

func TestTenantsSpec(t *testing.T) {
	ts, err := deadline.ParseTenants([]byte(`
default: {time_zone: America/New_York}
tenants:
  fr: {time_zone: Europe/Paris, roll_to_working_day: true, holidays: [2027-01-01, 2026-12-25, 2026-05-01, 2026-12-25]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if s := ts.Spec("unlisted"); s.TimeZone != "America/New_York" {
		t.Errorf("unlisted tenant: %+v", s)
	}
	if s := (*deadline.Tenants)(nil).Spec("any"); !s.IsDefault() {
		t.Errorf("no tenants file: %+v", s)
	}
	fr := ts.Spec("fr")
	if strings.Join(fr.Holidays, ",") != "2026-05-01,2026-12-25,2027-01-01" {
		t.Errorf("holidays not sorted and unique: %v", fr.Holidays)
	}
	// A request keeps only the holidays that can move its deadline or its
	// extension.
	got := fr.For(time.Date(2026, 10, 20, 9, 0, 0, 0, time.UTC))
	if strings.Join(got.Holidays, ",") != "2026-12-25,2027-01-01" || got.TimeZone != "Europe/Paris" || !got.RollToWorkingDay {
		t.Errorf("For = %+v", got)
	}
	// Counting with the kept spec gives the deadline of the whole one.
	for day := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC); day.Year() == 2026; day = day.AddDate(0, 0, 1) {
		whole, _ := fr.Policy()
		kept, err := fr.For(day).Policy()
		if err != nil {
			t.Fatal(err)
		}
		if !whole.Deadline(day).Equal(kept.Deadline(day)) || !whole.Extended(day).Equal(kept.Extended(day)) {
			t.Fatalf("%s: the kept holidays give another deadline", day.Format("2006-01-02"))
		}
	}
	if s := (deadline.Spec{TimeZone: "UTC"}).For(time.Now()); !s.IsDefault() || s.TimeZone != "" {
		t.Errorf("a spec counting as the default is kept as %+v", s)
	}
}

func TestTenantClasses(t *testing.T) {
	ts, err := deadline.ParseTenants([]byte(`
default: {class: standard}
tenants:
  a: {class: enterprise}
  b: {class: enterprise, time_zone: Europe/Paris}
  c: {time_zone: Asia/Tokyo}
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ tenant, class string }{{"a", "enterprise"}, {"b", "enterprise"}, {"c", "default"}, {"unlisted", "standard"}}
	for _, tt := range tests {
		if got := ts.Class(tt.tenant); got != tt.class {
			t.Errorf("Class(%q) = %q, want %q", tt.tenant, got, tt.class)
		}
	}
	if got := strings.Join(ts.Classes(), ","); got != "default,enterprise,standard" {
		t.Errorf("Classes = %s", got)
	}
	var none *deadline.Tenants
	if none.Class("x") != "default" || strings.Join(none.Classes(), ",") != "default" {
		t.Error("without a tenants file every tenant is in the default class")
	}
}

func TestVerificationExpiry(t *testing.T) {
	tenants, err := deadline.ParseTenants([]byte("default: {verification_expiry: 240h}\ntenants:\n  fast: {verification_expiry: 48h}\n  plain: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for tenant, want := range map[string]time.Duration{"fast": 48 * time.Hour, "plain": deadline.DefaultVerificationExpiry, "unlisted": 240 * time.Hour} {
		if got := tenants.VerificationExpiry(tenant); got != want {
			t.Errorf("%s: %v, want %v", tenant, got, want)
		}
	}
	def, own := tenants.VerificationExpiries()
	if def != 240*time.Hour || len(own) != 2 || own["fast"] != 48*time.Hour || own["plain"] != deadline.DefaultVerificationExpiry {
		t.Errorf("expiries: default %v, own %v", def, own)
	}
	var none *deadline.Tenants
	if def, own := none.VerificationExpiries(); none.VerificationExpiry("x") != deadline.DefaultVerificationExpiry ||
		def != deadline.DefaultVerificationExpiry || len(own) != 0 {
		t.Error("no tenants file: the default")
	}
	if _, err := deadline.ParseTenants([]byte("tenants:\n  bad: {verification_expiry: -1h}\n")); err == nil {
		t.Error("a negative expiry was taken")
	}
	if _, err := deadline.ParseTenants([]byte("tenants:\n  bad: {verification_expiry: soon}\n")); err == nil {
		t.Error("a malformed expiry was taken")
	}
}

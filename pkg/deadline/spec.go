package deadline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Spec is a [Policy] written down: as a tenant's configuration gives it, as
// the orchestrator keeps it with each request (a later change of the
// configuration does not move an existing request's deadline), and as a
// certificate carries it, so that a verifier recomputes the deadline
// offline. The zero Spec is the default policy: UTC, no roll.
type Spec struct {
	// TimeZone is an IANA zone name ("Europe/Paris"); "" means UTC.
	TimeZone string `json:"time_zone,omitempty" yaml:"time_zone"`
	// RollToWorkingDay moves a deadline off Saturdays, Sundays and
	// Holidays (Regulation 1182/71 Art. 3(4)).
	RollToWorkingDay bool `json:"roll_to_working_day,omitempty" yaml:"roll_to_working_day"`
	// Holidays are public holidays as dates, YYYY-MM-DD, in order.
	Holidays []string `json:"holidays,omitempty" yaml:"holidays"`
}

const dateLayout = "2006-01-02"

var classFormat = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// IsDefault reports whether s counts as the zero Policy does.
func (s Spec) IsDefault() bool {
	return (s.TimeZone == "" || s.TimeZone == "UTC") && !s.RollToWorkingDay
}

// Policy reads the spec. An unknown zone or a malformed date is an error.
func (s Spec) Policy() (Policy, error) {
	var p Policy
	if s.TimeZone != "" {
		loc, err := time.LoadLocation(s.TimeZone)
		if err != nil {
			return p, fmt.Errorf("deadline policy: unknown time zone %q", s.TimeZone)
		}
		p.Location = loc
	}
	p.RollToWorkingDay = s.RollToWorkingDay
	for _, h := range s.Holidays {
		d, err := time.Parse(dateLayout, h)
		if err != nil {
			return p, fmt.Errorf("deadline policy: holiday %q is not a date (YYYY-MM-DD)", h)
		}
		p.Holidays = append(p.Holidays, d)
	}
	return p, nil
}

// For returns the spec as it applies to a request received at received:
// the default spec when it counts as the default does, and otherwise only
// the holidays that can move its deadline or its extension (those from the
// day of receipt to two weeks after the latest extended deadline), so that
// what is kept with a request, and signed in its certificate, stays small.
func (s Spec) For(received time.Time) Spec {
	if s.IsDefault() {
		return Spec{}
	}
	out := Spec{TimeZone: s.TimeZone, RollToWorkingDay: s.RollToWorkingDay}
	if !s.RollToWorkingDay {
		return out
	}
	from := received.UTC().AddDate(0, 0, -1).Format(dateLayout)
	to := AddMonths(received.UTC(), 3).AddDate(0, 0, 15).Format(dateLayout)
	for _, h := range s.Holidays {
		if h >= from && h <= to { // YYYY-MM-DD sorts as dates do
			out.Holidays = append(out.Holidays, h)
		}
	}
	return out
}

// Tenants are the deadline policies of an orchestrator's tenants.
type Tenants struct {
	// Default applies to tenants not listed.
	Default Tenant            `yaml:"default"`
	Tenants map[string]Tenant `yaml:"tenants"`
}

// Tenant is one tenant's entry: its policy, and the class it is watched
// in (the metrics show the nearest deadline per class, so that a
// contract with a shorter answer time can have alerts of its own).
type Tenant struct {
	Spec `yaml:",inline"`
	// Class is a metric label, "default" when unset: a few values, never
	// a tenant's name.
	Class string `yaml:"class"`
	// VerificationExpiry is how long a request may wait for its identity
	// check before it ends expired (its identifiers dropped); zero:
	// DefaultVerificationExpiry.
	VerificationExpiry time.Duration `yaml:"verification_expiry"`
}

// DefaultVerificationExpiry is the time a request waits for its identity
// check unless the tenants file says otherwise: long enough for a letter
// to go and come back, short enough that an unverified claim does not keep
// a person's email for ever.
const DefaultVerificationExpiry = 30 * 24 * time.Hour

// VerificationExpiry returns how long a tenant's requests wait for their
// identity check.
func (t *Tenants) VerificationExpiry(tenant string) time.Duration {
	if d := t.tenant(tenant).VerificationExpiry; d > 0 {
		return d
	}
	return DefaultVerificationExpiry
}

// VerificationExpiries are the waits for an identity check: that of
// tenants the file does not list (def), and the listed tenants' that
// differ from it (own).
func (t *Tenants) VerificationExpiries() (def time.Duration, own map[string]time.Duration) {
	def, own = t.VerificationExpiry(""), map[string]time.Duration{}
	if t != nil {
		for name := range t.Tenants {
			if d := t.VerificationExpiry(name); d != def {
				own[name] = d
			}
		}
	}
	return def, own
}

// DefaultClass is the class of a tenant that names none.
const DefaultClass = "default"

// Spec returns the policy of a tenant.
func (t *Tenants) Spec(tenant string) Spec {
	return t.tenant(tenant).Spec
}

// Class returns the class of a tenant.
func (t *Tenants) Class(tenant string) string {
	if c := t.tenant(tenant).Class; c != "" {
		return c
	}
	return DefaultClass
}

// Classes returns every class, sorted, DefaultClass included.
func (t *Tenants) Classes() []string {
	classes := []string{DefaultClass}
	if t != nil {
		for _, e := range append([]Tenant{t.Default}, slices.Collect(maps.Values(t.Tenants))...) {
			if e.Class != "" {
				classes = append(classes, e.Class)
			}
		}
	}
	slices.Sort(classes)
	return slices.Compact(classes)
}

func (t *Tenants) tenant(name string) Tenant {
	if t == nil {
		return Tenant{}
	}
	if e, ok := t.Tenants[name]; ok {
		return e
	}
	return t.Default
}

// LoadTenants reads a tenants file:
//
//	default: {time_zone: UTC}
//	tenants:
//	  acme-fr:
//	    class: enterprise            # a metric label (default "default")
//	    time_zone: Europe/Paris
//	    roll_to_working_day: true
//	    holidays: [2026-12-25, 2027-01-01]
//	    verification_expiry: 720h    # unverified requests expire (default 30 days)
//
// Every zone and date is checked, and holidays are sorted, so a bad file is
// refused when the orchestrator starts rather than when a request comes.
func LoadTenants(path string) (*Tenants, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	return ParseTenants(b)
}

// ParseTenants reads a tenants file's content; see [LoadTenants].
func ParseTenants(b []byte) (*Tenants, error) {
	var t Tenants
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty file is every tenant on the default policy.
	if err := dec.Decode(&t); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	check := func(name string, e *Tenant) error {
		if e.VerificationExpiry < 0 {
			return fmt.Errorf("tenants file: %s: verification_expiry is negative", name)
		}
		if e.Class != "" && !classFormat.MatchString(e.Class) {
			return fmt.Errorf("tenants file: %s: class %q: want 1-32 lowercase letters, digits, '_' or '-'", name, e.Class)
		}
		s := &e.Spec
		if _, err := s.Policy(); err != nil {
			return fmt.Errorf("tenants file: %s: %w", name, err)
		}
		if len(s.Holidays) > 0 && !s.RollToWorkingDay {
			return fmt.Errorf("tenants file: %s: holidays are listed but roll_to_working_day is off, so they would change nothing", name)
		}
		slices.Sort(s.Holidays)
		s.Holidays = slices.Compact(s.Holidays)
		return nil
	}
	if err := check("default", &t.Default); err != nil {
		return nil, err
	}
	for name, e := range t.Tenants {
		if strings.TrimSpace(name) == "" {
			return nil, errors.New("tenants file: a tenant with an empty name")
		}
		if err := check("tenant "+name, &e); err != nil {
			return nil, err
		}
		t.Tenants[name] = e
	}
	return &t, nil
}

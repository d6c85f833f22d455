package deadline_test

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lethe-dev/lethe/pkg/deadline"
)

// FuzzParseTenants: any tenants file. ParseTenants never panics; a file it
// accepts keeps its promises (every zone and date read, holidays sorted
// and once each and only with the roll, classes and expiries well formed,
// no blank tenant name); every tenant's deadline is after receipt, at the
// last second of a day, on a working day when it rolls, and not after its
// extension; the spec a request keeps (Spec.For) counts the same deadlines
// as the tenant's whole policy; and the file survives encoding.
func FuzzParseTenants(f *testing.F) {
	for _, s := range []string{
		"",
		"default: {time_zone: UTC}\ntenants:\n  acme-fr:\n    class: enterprise\n    time_zone: Europe/Paris\n    roll_to_working_day: true\n    holidays: [2026-12-25, 2027-01-01]\n    verification_expiry: 720h\n  acme-jp: {time_zone: Asia/Tokyo}\n",
		"tenants:\n  fr: {time_zone: Europe/Paris, roll_to_working_day: true, holidays: [2026-12-25, 2026-05-01, 2026-05-01]}",
		"default: {time_zone: America/New_York, class: us, verification_expiry: 48h}",
		"tenants:\n  kiribati: {time_zone: Pacific/Kiritimati, roll_to_working_day: true, holidays: [2026-03-02, 2026-03-03]}\n  samoa: {time_zone: Pacific/Pago_Pago, roll_to_working_day: true}",
		"tenants:\n  x: {time_zone: Mars/Olympus}",
		"tenants:\n  x: {roll_to_working_day: true, holidays: [25/12/2026]}",
		"tenants:\n  x: {holidays: [2026-12-25]}",
		"tenants:\n  x: {class: Enterprise}",
		"tenants:\n  bad: {verification_expiry: -1h}",
		"tenants:\n  \" \": {}",
		"tenants:\n  x: {unknown: 1}",
		"tenants: [a, b]",
		"default: &d {time_zone: Europe/Paris}\ntenants:\n  a: *d\n",
		"\t",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := deadline.ParseTenants(data)
		if err != nil {
			if ts != nil {
				t.Fatal("ParseTenants returned tenants with its error")
			}
			return
		}
		check(t, "default", ts.Default)
		for name, e := range ts.Tenants {
			if strings.TrimSpace(name) == "" {
				t.Fatalf("accepted a tenant with a blank name %q", name)
			}
			check(t, name, e)
			if c := ts.Class(name); c != e.Class && !(e.Class == "" && c == deadline.DefaultClass) {
				t.Fatalf("%s: class %q, its entry says %q", name, c, e.Class)
			}
			if !reflect.DeepEqual(ts.Spec(name), e.Spec) {
				t.Fatalf("%s: Spec is not its entry's", name)
			}
		}
		if ts.VerificationExpiry("not-listed-tenant") <= 0 {
			t.Fatal("an expiry that is not positive")
		}
		classes := ts.Classes()
		if !slices.IsSorted(classes) || !slices.Contains(classes, deadline.DefaultClass) || len(slices.Compact(slices.Clone(classes))) != len(classes) {
			t.Fatalf("classes %v", classes)
		}

		out, err := yaml.Marshal(ts)
		if err != nil {
			t.Fatalf("accepted tenants do not encode: %v", err)
		}
		again, err := deadline.ParseTenants(out)
		if err != nil {
			t.Fatalf("the encoding of accepted tenants is refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normal(ts), normal(again)) {
			t.Fatalf("ParseTenants -> yaml.Marshal -> ParseTenants changed them:\n%#v\n%#v\n%s", ts, again, out)
		}
	})
}

var (
	classRE = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
	// received are the times of receipt each tenant's deadlines are
	// computed for: month ends, a leap day, year ends, and the hours
	// around midnight where the zone's date is not UTC's.
	received = []time.Time{
		time.Date(2026, 1, 31, 23, 30, 0, 0, time.UTC),
		time.Date(2026, 1, 31, 0, 30, 0, 0, time.UTC),
		time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 24, 9, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 30, 13, 0, 0, 0, time.UTC),
		time.Date(2027, 3, 28, 1, 30, 0, 0, time.UTC), // a DST change in Europe
	}
)

// check checks one accepted entry.
func check(t *testing.T, name string, e deadline.Tenant) {
	t.Helper()
	switch {
	case e.VerificationExpiry < 0:
		t.Fatalf("%s: negative expiry", name)
	case e.Class != "" && !classRE.MatchString(e.Class):
		t.Fatalf("%s: class %q", name, e.Class)
	case len(e.Holidays) > 0 && !e.RollToWorkingDay:
		t.Fatalf("%s: holidays without the roll", name)
	case !slices.IsSorted(e.Holidays) || len(slices.Compact(slices.Clone(e.Holidays))) != len(e.Holidays):
		t.Fatalf("%s: holidays not sorted or twice: %v", name, e.Holidays)
	}
	p, err := e.Policy()
	if err != nil {
		t.Fatalf("%s: accepted, yet its policy does not read: %v", name, err)
	}
	holiday := map[string]bool{}
	for _, h := range e.Holidays {
		if d, err := time.Parse("2006-01-02", h); err != nil || d.Format("2006-01-02") != h {
			t.Fatalf("%s: holiday %q is not a date as written", name, h)
		}
		holiday[h] = true
	}
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	for _, r := range received {
		d, x := p.Deadline(r), p.Extended(r)
		local := d.In(loc)
		switch {
		case !d.After(r):
			t.Fatalf("%s: received %s, due %s", name, r, d)
		case x.Before(d):
			t.Fatalf("%s: received %s, due %s, extended to %s", name, r, d, x)
		case local.Add(time.Second).Day() == local.Day():
			t.Fatalf("%s: due %s, not the last second of a day in %s", name, local, loc)
		case d.Before(deadline.AddMonths(r.In(loc), 1)):
			t.Fatalf("%s: received %s, due %s, before a month has passed", name, r, d)
		}
		if e.RollToWorkingDay {
			for _, due := range []time.Time{local, x.In(loc)} {
				if wd := due.Weekday(); wd == time.Saturday || wd == time.Sunday || holiday[due.Format("2006-01-02")] {
					t.Fatalf("%s: rolls to working days, yet is due on %s", name, due.Format("Monday 2006-01-02"))
				}
			}
		}
		// What a request keeps counts as the whole policy does.
		kept, err := e.For(r).Policy()
		if err != nil {
			t.Fatalf("%s: the spec kept for a request does not read: %v", name, err)
		}
		if kd, kx := kept.Deadline(r), kept.Extended(r); !kd.Equal(d) || !kx.Equal(x) {
			t.Fatalf("%s: received %s: due %s and %s by its policy, %s and %s by the spec a request keeps (%+v)", name, r, d, x, kd, kx, e.For(r))
		}
	}
}

// normal is ts with empty lists and maps as nil: the same file.
func normal(ts *deadline.Tenants) *deadline.Tenants {
	n := func(e deadline.Tenant) deadline.Tenant {
		if len(e.Holidays) == 0 {
			e.Holidays = nil
		}
		return e
	}
	out := &deadline.Tenants{Default: n(ts.Default)}
	for name, e := range ts.Tenants {
		if out.Tenants == nil {
			out.Tenants = map[string]deadline.Tenant{}
		}
		out.Tenants[name] = n(e)
	}
	return out
}

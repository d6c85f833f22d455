package exportbundle_test

import (
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/exportbundle"
)

// index writes m's bundle and returns its index.html.
func index(t testing.TB, m *exportbundle.Manifest, s store) string {
	t.Helper()
	got, _ := entries(t, write(t, m, s))
	return string(got["index.html"])
}

// hostile is a bundle whose data tries to get into the page's markup.
func hostile(t testing.TB) (*exportbundle.Manifest, store) {
	m, s := threeSystems(t)
	m.Tenant = `Acme <b onmouseover="x">&</b>`
	m.RequestID = `req-"><script>alert(0)</script>`
	accounts := &m.Systems[0]
	s.records(t, accounts, map[string]tables{
		"account": {"profile": {{
			"name":             "<script>alert(1)</script>",
			"bio":              `"><img src=x onerror=alert(2)>`,
			"<th>column</th>":  "value",
			"style":            "</style><style>body{display:none}</style>",
			"nested":           row{"html": "<iframe src=javascript:alert(3)>"},
			"javascript:alert": "javascript:alert(4)",
		}}},
	})
	m.Systems[1].Note = `<a href="javascript:alert(5)">click</a>`
	return m, s
}

func TestIndexEscapes(t *testing.T) {
	m, s := hostile(t)
	page := index(t, m, s)
	lower := strings.ToLower(page)
	for _, bad := range []string{"<script", "<img", "<iframe", "<b ", "<a href=\"javascript", "</style><style>", "<th>column"} {
		if strings.Contains(lower, bad) {
			t.Errorf("index.html has %q", bad)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"&#34;&gt;&lt;img src=x onerror=alert(2)&gt;",
		"Acme &lt;b onmouseover=&#34;x&#34;&gt;&amp;&lt;/b&gt;",
		"&lt;a href=&#34;javascript:alert(5)&#34;&gt;click&lt;/a&gt;",
		`<code>{&#34;html&#34;:&#34;\u003ciframe src=javascript:alert(3)\u003e&#34;}</code>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html does not have %q", want)
		}
	}
	if strings.Count(lower, "<style") != 1 {
		t.Errorf("index.html has %d style elements, want 1", strings.Count(lower, "<style"))
	}
}

// TestIndexLoadsNothing checks that the page refers to nothing outside the
// bundle: no script, no URL with a scheme, no style sheet, font or image.
func TestIndexLoadsNothing(t *testing.T) {
	m, s := demo(t)
	page := index(t, m, s)
	lower := strings.ToLower(page)
	for _, bad := range []string{"<script", "http://", "https://", "//", "<link", "<img", "<iframe", "<object", "<embed", "@import", "url(", "@font-face"} {
		if bad == "//" {
			// only in a comment-free page: no protocol-relative URL in an attribute
			if regexp.MustCompile(`(?:src|href)="//`).MatchString(lower) {
				t.Errorf("index.html has a protocol-relative URL")
			}
			continue
		}
		if strings.Contains(lower, bad) {
			t.Errorf("index.html has %q", bad)
		}
	}
	// Every link and source is a path in the bundle, or a fragment.
	for _, attr := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		v := attr[1]
		if !strings.HasPrefix(v, "#") && !strings.HasPrefix(v, "files/") && !strings.HasPrefix(v, "csv/") && !strings.HasPrefix(v, "systems/") {
			t.Errorf("index.html refers to %q", v)
		}
	}
	// A URL in the data is text, not a link.
	s.records(t, &m.Systems[0], map[string]tables{"account": {"profile": {{"website": "https://example.org/me", "avatar": "http://example.org/a.png"}}}})
	page = index(t, m, s)
	if regexp.MustCompile(`(?:src|href)="[a-z]+:`).MatchString(page) {
		t.Errorf("a URL in the data became a link")
	}
	if !strings.Contains(page, "<td>https://example.org/me</td>") {
		t.Errorf("a URL in the data is not shown as text")
	}
}

func TestIndexContent(t *testing.T) {
	m, s := demo(t)
	page := index(t, m, s)
	for _, want := range []string{
		`<html lang="en">`,
		`<meta charset="utf-8">`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<title>Your data held by Acme Webinars</title>`,
		`<h1>Your data held by Acme Webinars</h1>`,
		`req-2026-04-7f3a9c`,
		`14 April 2026 at 09:30 UTC`,
		// a heading and its plain explanation per category, in the policy's order
		`<h2>Your account</h2>`, `<h2>Identification</h2>`, `<h2>Sign-ins</h2>`,
		`When and from where you signed in.`,
		`<h2>Billing</h2>`, `<h2>Emails and engagement</h2>`, `<h2>Recordings</h2>`, `<h2>Your contributions</h2>`,
		`<h2>Sub processors</h2>`, // not in the policy: named after its category
		// tables, rows, values
		`<h4>Login history`, `<th scope="col">Ip address</th>`, `<td>Safari on iPhone</td>`, `<td>INV-2026-0312</td>`,
		`<code>[{&#34;amount&#34;:49,&#34;item&#34;:&#34;Pro plan, March&#34;}]</code>`,
		`<a href="csv/accounts/login_history.csv">CSV</a>`,
		// the empty state and the note
		`This service holds no data about you.`,
		`it has no export API`,
		// the recording: a link, its size, a player
		`<a href="files/recordings/Quarterly%20product%20update%20%282026-03-12%29.mp4">Quarterly product update (2026-03-12).mp4</a>`,
		`3.1 MB`,
		`<video controls preload="metadata" src="files/recordings/Quarterly%20product%20update%20%282026-03-12%29.mp4"></video>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html does not have %q", want)
		}
	}
	order := []string{"Your account", "Identification", "Sign-ins", "Billing", "Emails and engagement", "Recordings", "Your contributions", "Sub processors"}
	last := -1
	for _, title := range order {
		i := strings.Index(page, "<h2>"+title+"</h2>")
		if i < last {
			t.Errorf("%s comes before the category shown before it", title)
		}
		last = i
	}
	if d, _ := m.Digest(); !strings.Contains(page, hex.EncodeToString(d[:])) {
		t.Errorf("index.html does not show the manifest's digest")
	}
}

func TestIndexEmptyStates(t *testing.T) {
	m, s := threeSystems(t)
	m.Systems = append(m.Systems,
		exportbundle.System{Name: "zfailed", Outcome: "failed", Note: "The service did not answer in time."},
		exportbundle.System{Name: "zsub", Outcome: "resolved", Note: "Contacted, no export API."},
	)
	m.Systems[1].Note = "This service holds no data about you." // as the orchestrator says it
	page := index(t, m, s)
	if n := strings.Count(page, "This service holds no data about you."); n != 1 {
		t.Errorf("the empty state is said %d times, want once", n)
	}
	for _, want := range []string{
		"This service holds no data about you.",          // billing: not_found
		"Nothing from this service is in this download.", // failed, resolved
		"Could not export", "The service did not answer in time.", "Contacted, no export API.",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("index.html does not have %q", want)
		}
	}
}

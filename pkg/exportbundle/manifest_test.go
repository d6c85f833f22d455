package exportbundle_test

import (
	"bytes"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lethe-dev/lethe/pkg/exportbundle"
)

const sha1 = "1111111111111111111111111111111111111111111111111111111111111111"
const sha2 = "2222222222222222222222222222222222222222222222222222222222222222"

func small() *exportbundle.Manifest {
	return &exportbundle.Manifest{
		Format:      exportbundle.Format,
		RequestID:   "req-1",
		Tenant:      "Acme",
		GeneratedAt: time.Date(2026, 4, 14, 9, 30, 0, 0, time.UTC),
		Systems: []exportbundle.System{
			{Name: "accounts", Outcome: "exported", Categories: []string{"account", "connection"},
				Counts:  map[string]int64{"account": 1, "connection": 3},
				Records: &exportbundle.File{Path: "systems/accounts.json", ContentType: "application/json", Size: 120, SHA256: sha1, Ref: "r1"}},
			{Name: "billing", Outcome: "not_found", Note: "Nothing & <nobody>"},
			{Name: "recordings", Outcome: "exported", Categories: []string{"recordings"},
				Files: []exportbundle.File{
					{Path: "files/recordings/a.mp4", Category: "recordings", ContentType: "video/mp4", Size: 5, SHA256: sha1, Ref: "r2"},
					{Path: "files/recordings/b.mp4", Category: "recordings", ContentType: "video/mp4", Size: 0, SHA256: sha2, Ref: "r3"},
				}},
		},
	}
}

// TestEncodeFormat pins the encoding: the orchestrator rebuilds a manifest at
// download and must get the digest the certificate has.
func TestEncodeFormat(t *testing.T) {
	got, err := small().Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "format": "lethe-export/1",
  "request_id": "req-1",
  "tenant": "Acme",
  "generated_at": "2026-04-14T09:30:00Z",
  "systems": [
    {
      "system": "accounts",
      "outcome": "exported",
      "categories": [
        "account",
        "connection"
      ],
      "record_counts": {
        "account": 1,
        "connection": 3
      },
      "records": {
        "path": "systems/accounts.json",
        "content_type": "application/json",
        "size": 120,
        "sha256": "` + sha1 + `"
      }
    },
    {
      "system": "billing",
      "outcome": "not_found",
      "note": "Nothing \u0026 \u003cnobody\u003e"
    },
    {
      "system": "recordings",
      "outcome": "exported",
      "categories": [
        "recordings"
      ],
      "files": [
        {
          "path": "files/recordings/a.mp4",
          "category": "recordings",
          "content_type": "video/mp4",
          "size": 5,
          "sha256": "` + sha1 + `"
        },
        {
          "path": "files/recordings/b.mp4",
          "category": "recordings",
          "content_type": "video/mp4",
          "size": 0,
          "sha256": "` + sha2 + `"
        }
      ]
    }
  ]
}
`
	if string(got) != want {
		t.Errorf("Encode:\n%s\nwant\n%s", got, want)
	}
}

func TestEncodeDeterministic(t *testing.T) {
	want, err := small().Encode()
	if err != nil {
		t.Fatal(err)
	}
	variants := map[string]func(m *exportbundle.Manifest){
		"as is": func(m *exportbundle.Manifest) {},
		"systems reversed": func(m *exportbundle.Manifest) {
			m.Systems[0], m.Systems[2] = m.Systems[2], m.Systems[0]
		},
		"files reversed": func(m *exportbundle.Manifest) {
			fs := m.Systems[2].Files
			fs[0], fs[1] = fs[1], fs[0]
		},
		"categories reversed, repeated": func(m *exportbundle.Manifest) {
			m.Systems[0].Categories = []string{"connection", "account", "connection"}
		},
		"counts built in another order": func(m *exportbundle.Manifest) {
			c := map[string]int64{}
			c["connection"] = 3
			c["account"] = 1
			m.Systems[0].Counts = c
		},
		"empty, not nil": func(m *exportbundle.Manifest) {
			m.Systems[1].Categories = []string{}
			m.Systems[1].Counts = map[string]int64{}
			m.Systems[1].Files = []exportbundle.File{}
		},
		"another time zone, nanoseconds": func(m *exportbundle.Manifest) {
			paris := time.FixedZone("Paris", 2*3600)
			m.GeneratedAt = time.Date(2026, 4, 14, 11, 30, 0, 999_999_999, paris)
		},
		"refs differ": func(m *exportbundle.Manifest) {
			m.Systems[0].Records.Ref = "elsewhere"
		},
	}
	for name, edit := range variants {
		t.Run(name, func(t *testing.T) {
			m := small()
			edit(m)
			before := copyManifest(m)
			for range 20 {
				got, err := m.Encode()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("Encode:\n%s\nwant\n%s", got, want)
				}
			}
			if d, _ := m.Digest(); d != mustDigest(t, small()) {
				t.Errorf("Digest differs")
			}
			if !reflect.DeepEqual(m, before) {
				t.Errorf("Encode changed the manifest")
			}
		})
	}
}

func copyManifest(m *exportbundle.Manifest) *exportbundle.Manifest {
	c := *m
	c.Systems = slices.Clone(m.Systems)
	for i := range c.Systems {
		s := &c.Systems[i]
		if s.Records != nil {
			r := *s.Records
			s.Records = &r
		}
		s.Files = slices.Clone(s.Files)
		s.Categories = slices.Clone(s.Categories)
		s.Counts = maps.Clone(s.Counts)
	}
	return &c
}

func mustDigest(t *testing.T, m *exportbundle.Manifest) [32]byte {
	d, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name, want string
		edit       func(m *exportbundle.Manifest)
	}{
		{"format", "format", func(m *exportbundle.Manifest) { m.Format = "lethe-export/2" }},
		{"request id", "request id", func(m *exportbundle.Manifest) { m.RequestID = "" }},
		{"tenant", "tenant", func(m *exportbundle.Manifest) { m.Tenant = "" }},
		{"time", "generation time", func(m *exportbundle.Manifest) { m.GeneratedAt = time.Time{} }},
		{"system name", "not a safe path segment", func(m *exportbundle.Manifest) { m.Systems[0].Name = "../etc" }},
		{"empty system name", "not a safe path segment", func(m *exportbundle.Manifest) { m.Systems[0].Name = "" }},
		{"system twice", "listed twice", func(m *exportbundle.Manifest) { m.Systems[1].Name = "accounts" }},
		{"outcome", "no outcome", func(m *exportbundle.Manifest) { m.Systems[1].Outcome = "" }},
		{"negative count", "record count", func(m *exportbundle.Manifest) { m.Systems[0].Counts["account"] = -1 }},
		{"records path", "records document at", func(m *exportbundle.Manifest) { m.Systems[0].Records.Path = "systems/other.json" }},
		{"file path outside", "not files/recordings/", func(m *exportbundle.Manifest) { m.Systems[2].Files[0].Path = "files/accounts/a.mp4" }},
		{"file path traversal", "not files/recordings/", func(m *exportbundle.Manifest) { m.Systems[2].Files[0].Path = "files/recordings/../../x" }},
		{"file path unsafe", "not files/recordings/", func(m *exportbundle.Manifest) { m.Systems[2].Files[0].Path = "files/recordings/a:b.mp4" }},
		{"file path twice", "listed twice", func(m *exportbundle.Manifest) { m.Systems[2].Files[1].Path = "files/recordings/a.mp4" }},
		{"file path twice but case", "listed twice", func(m *exportbundle.Manifest) { m.Systems[2].Files[1].Path = "files/recordings/A.mp4" }},
		{"negative size", "size -1", func(m *exportbundle.Manifest) { m.Systems[2].Files[0].Size = -1 }},
		{"upper-case sha256", "hex", func(m *exportbundle.Manifest) { m.Systems[2].Files[0].SHA256 = strings.Repeat("AB", 32) }},
		{"short sha256", "hex", func(m *exportbundle.Manifest) { m.Systems[0].Records.SHA256 = "abc" }},
	}
	if err := small().Validate(); err != nil {
		t.Fatalf("a valid manifest: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := small()
			tt.edit(m)
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate: %v, want an error with %q", err, tt.want)
			}
			if _, err := m.Encode(); err == nil {
				t.Errorf("Encode encoded an invalid manifest")
			}
		})
	}
}

func TestPaths(t *testing.T) {
	if got := exportbundle.RecordsPath("billing"); got != "systems/billing.json" {
		t.Errorf("RecordsPath: %s", got)
	}
	if got := exportbundle.FilePath("recordings", "../../etc/passwd"); got != "files/recordings/_.._etc_passwd" {
		t.Errorf("FilePath: %s", got)
	}
}

func TestFilePaths(t *testing.T) {
	long := strings.Repeat("x", 120) + ".mp4"
	got := exportbundle.FilePaths("recordings", []string{"a.mp4", "A.mp4", "a.mp4", "b", "b", "a (2).mp4", "x/y", long, long, ".."})
	want := []string{
		"files/recordings/a.mp4", "files/recordings/A (2).mp4", "files/recordings/a (3).mp4",
		"files/recordings/b", "files/recordings/b (2)", "files/recordings/a (2) (2).mp4", "files/recordings/x_y",
		"files/recordings/" + strings.Repeat("x", 96) + ".mp4", "files/recordings/" + strings.Repeat("x", 92) + " (2).mp4",
		"files/recordings/file",
	}
	if !slices.Equal(got, want) {
		t.Errorf("FilePaths:\n%q\nwant\n%q", got, want)
	}
	m := small()
	m.Systems[2].Files = nil
	for _, p := range got {
		m.Systems[2].Files = append(m.Systems[2].Files, exportbundle.File{Path: p, SHA256: sha1})
	}
	if err := m.Validate(); err != nil {
		t.Errorf("a manifest with these paths: %v", err)
	}
}

func TestSafeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Webinar 1.mp4", "Webinar 1.mp4"},
		{"Réunion d'équipe.mp4", "Réunion d'équipe.mp4"},
		{"録画.mp4", "録画.mp4"},
		{"a/b\\c.mp4", "a_b_c.mp4"},
		{"../../etc/passwd", "_.._etc_passwd"},
		{"..", "file"},
		{"", "file"},
		{" . ", "file"},
		{".hidden", "hidden"},
		{"trailing. ", "trailing"},
		{"CON", "_CON"},
		{"nul.txt", "_nul.txt"},
		{"com1 .mp4", "_com1 .mp4"},
		{"console.txt", "console.txt"},
		{"a:b*c?d\"e<f>g|h", "a_b_c_d_e_f_g_h"},
		{"tab\there\nnewline", "tab_here_newline"},
		{"bad\xffutf8", "bad_utf8"},
		{"right\u202eleft.mp4", "right_left.mp4"},
		{"100% #1 &more", "100_ _1 &more"},
		{strings.Repeat("a", 300) + ".mp4", strings.Repeat("a", 96) + ".mp4"},
		{strings.Repeat("é", 100), strings.Repeat("é", 50)},
	}
	for _, tt := range tests {
		if got := exportbundle.SafeName(tt.in); got != tt.want {
			t.Errorf("SafeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzSafeName(f *testing.F) {
	for _, s := range []string{"", "..", "CON", "a/b", ".\u0301x", strings.Repeat("x.", 80), "nul" + strings.Repeat(" ", 120) + ".mp4", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s := exportbundle.SafeName(in)
		if s == "" || len(s) > 100 || !utf8.ValidString(s) {
			t.Fatalf("SafeName(%q) = %q", in, s)
		}
		if strings.ContainsAny(s, "/\\:*?\"<>|%#\x00") || s == "." || s == ".." {
			t.Fatalf("SafeName(%q) = %q: not a safe segment", in, s)
		}
		if strings.Trim(s, ". ") != s {
			t.Fatalf("SafeName(%q) = %q: leading or trailing dot or space", in, s)
		}
		if again := exportbundle.SafeName(s); again != s {
			t.Fatalf("SafeName(SafeName(%q)) = %q, not %q", in, again, s)
		}
	})
}

func TestParseRecords(t *testing.T) {
	bad := []string{
		``, `[]`, `"x"`, `{"account": []}`, `{"account": {"profile": {}}}`,
		`{"account": {"profile": [1]}}`, `{"account": {"profile": [[]]}}`, `{} {}`, `{"a": {"t": [{"k": 1}]}`,
	}
	for _, doc := range bad {
		if _, err := exportbundle.ParseRecords([]byte(doc)); err == nil {
			t.Errorf("ParseRecords(%s) accepted it", doc)
		}
	}
	// What the connector SDK takes (it decodes into map[string]map[string][]map[string]any).
	for _, doc := range []string{`{}`, `null`, `{"account": null}`, `{"account": {"profile": null}}`, `{"account": {"profile": [null]}}`} {
		r, err := exportbundle.ParseRecords([]byte(doc))
		if err != nil || r == nil {
			t.Errorf("ParseRecords(%s) = %v, %v", doc, r, err)
		}
	}
	r, err := exportbundle.ParseRecords([]byte(`{"account": {"profile": [{"a": 1}]}, "connection": {"logins": [{}, {}], "devices": []}, "empty": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Categories(); !reflect.DeepEqual(got, []string{"account", "connection"}) {
		t.Errorf("Categories: %q", got)
	}
	if got := r.Counts(); !reflect.DeepEqual(got, map[string]int64{"account": 1, "connection": 2}) {
		t.Errorf("Counts: %v", got)
	}
}

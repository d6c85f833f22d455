package exportbundle_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/exportbundle"
)

// threeSystems is a bundle of three systems: one with records in two
// categories, one with records and a 3 MiB recording, one with nothing.
func threeSystems(t testing.TB) (*exportbundle.Manifest, store) {
	s := store{}
	accounts := exportbundle.System{Name: "accounts", Outcome: "exported"}
	s.records(t, &accounts, map[string]tables{
		"account": {"profile": {{"email": "ada@example.org", "name": "Ada Lovelace", "address": row{"city": "London", "lines": []string{"12 St James's Square"}}}}},
		"connection": {"login_history": {
			{"at": "2026-04-01T10:00:00Z", "ip": "192.0.2.1"},
			{"at": "2026-04-02T11:00:00Z", "ip": "192.0.2.2", "country": "GB"},
			{"at": "2026-04-03T12:00:00Z", "ip": nil, "mfa": true, "attempts": 2},
		}},
	})
	recordings := exportbundle.System{Name: "recordings", Outcome: "exported"}
	s.records(t, &recordings, map[string]tables{
		"contributions": {"comments": {{"text": "=HYPERLINK(\"x\")", "at": "2026-03-12T16:21:09Z"}}},
	})
	video := s.put("blob/v1", exportbundle.FilePath("recordings", "Webinar 1.mp4"), randomBytes(7, 3<<20))
	video.Category, video.ContentType = "recordings", "video/mp4"
	recordings.Files = []exportbundle.File{video}
	billing := exportbundle.System{Name: "billing", Outcome: "not_found", Note: "No invoice was ever issued to you."}
	return &exportbundle.Manifest{
		Format:      exportbundle.Format,
		RequestID:   "req-1",
		Tenant:      "Acme",
		GeneratedAt: generatedAt,
		Systems:     []exportbundle.System{accounts, billing, recordings},
	}, s
}

func TestRoundTrip(t *testing.T) {
	m, s := threeSystems(t)
	bundle := write(t, m, s)
	got, names := entries(t, bundle)

	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if names[0] != "manifest.json" || names[len(names)-1] != "index.html" {
		t.Errorf("entries in the order %q: want manifest.json first and index.html last", names)
	}
	if !bytes.Equal(got["manifest.json"], enc) {
		t.Errorf("manifest.json is not Encode's bytes:\n%s\nwant\n%s", got["manifest.json"], enc)
	}
	wantNames := []string{
		"manifest.json",
		"systems/accounts.json", "csv/accounts/profile.csv", "csv/accounts/login_history.csv",
		"systems/recordings.json", "csv/recordings/comments.csv", "files/recordings/Webinar 1.mp4",
		"index.html",
	}
	if !slices.Equal(names, wantNames) {
		t.Errorf("entries\n%q\nwant\n%q", names, wantNames)
	}
	for _, sys := range m.Systems {
		files := sys.Files
		if sys.Records != nil {
			files = append(files, *sys.Records)
		}
		for _, f := range files {
			if !bytes.Equal(got[f.Path], s[f.Ref]) {
				t.Errorf("%s: %d bytes in the bundle, not the blob's %d", f.Path, len(got[f.Path]), len(s[f.Ref]))
			}
		}
	}

	csvTests := []struct {
		path string
		want [][]string
	}{
		{"csv/accounts/profile.csv", [][]string{
			{"address", "email", "name"},
			{`{"city":"London","lines":["12 St James's Square"]}`, "ada@example.org", "Ada Lovelace"},
		}},
		{"csv/accounts/login_history.csv", [][]string{
			{"at", "attempts", "country", "ip", "mfa"},
			{"2026-04-01T10:00:00Z", "", "", "192.0.2.1", ""},
			{"2026-04-02T11:00:00Z", "", "GB", "192.0.2.2", ""},
			{"2026-04-03T12:00:00Z", "2", "", "", "true"},
		}},
		{"csv/recordings/comments.csv", [][]string{
			{"at", "text"},
			{"2026-03-12T16:21:09Z", `'=HYPERLINK("x")`}, // not a formula
		}},
	}
	for _, tt := range csvTests {
		t.Run(tt.path, func(t *testing.T) {
			b, ok := bytes.CutPrefix(got[tt.path], []byte("\uFEFF"))
			if !ok {
				t.Errorf("no byte order mark")
			}
			if !bytes.HasSuffix(b, []byte("\r\n")) {
				t.Errorf("lines do not end with CRLF")
			}
			recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(recs, tt.want) {
				t.Errorf("got %q\nwant %q", recs, tt.want)
			}
		})
	}

	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		want := zip.Deflate
		if strings.HasPrefix(f.Name, "files/") {
			want = zip.Store
		}
		if f.Method != want {
			t.Errorf("%s: method %d, want %d", f.Name, f.Method, want)
		}
		if !f.Modified.Equal(generatedAt) {
			t.Errorf("%s: modified %v, want %v", f.Name, f.Modified, generatedAt)
		}
	}

	cm, digest, err := exportbundle.Check(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatalf("Check of a bundle as written: %v", err)
	}
	if want, _ := m.Digest(); digest != want || digest != sha256.Sum256(enc) {
		t.Errorf("Check's digest %x, want %x", digest, want)
	}
	want := *m
	want.Systems = slices.Clone(m.Systems)
	for i := range want.Systems {
		sys := &want.Systems[i]
		if sys.Records != nil {
			r := *sys.Records
			r.Ref = ""
			sys.Records = &r
		}
		sys.Files = slices.Clone(sys.Files)
		for j := range sys.Files {
			sys.Files[j].Ref = ""
		}
	}
	if !reflect.DeepEqual(cm, &want) {
		t.Errorf("Check read\n%+v\nwant\n%+v", cm, &want)
	}
}

func TestDemoRoundTrip(t *testing.T) {
	m, s := demo(t)
	bundle := write(t, m, s)
	if _, _, err := exportbundle.Check(bytes.NewReader(bundle), int64(len(bundle))); err != nil {
		t.Fatalf("Check of the demo bundle: %v", err)
	}
}

func TestWriteMismatch(t *testing.T) {
	tests := []struct {
		name, path string
		edit       func(m *exportbundle.Manifest, s store)
		nothing    bool // nothing written: the records are read first
	}{
		{"file content", "files/recordings/Webinar 1.mp4", func(m *exportbundle.Manifest, s store) {
			s["blob/v1"] = bytes.Clone(s["blob/v1"])
			s["blob/v1"][1<<20] ^= 1
		}, false},
		{"file shorter", "files/recordings/Webinar 1.mp4", func(m *exportbundle.Manifest, s store) {
			s["blob/v1"] = s["blob/v1"][:3<<20-1]
		}, false},
		{"file longer", "files/recordings/Webinar 1.mp4", func(m *exportbundle.Manifest, s store) {
			s["blob/v1"] = append(bytes.Clone(s["blob/v1"]), 0)
		}, false},
		{"manifest size", "files/recordings/Webinar 1.mp4", func(m *exportbundle.Manifest, s store) {
			m.Systems[2].Files[0].Size++
		}, false},
		{"manifest sha256", "files/recordings/Webinar 1.mp4", func(m *exportbundle.Manifest, s store) {
			m.Systems[2].Files[0].SHA256 = strings.Repeat("0", 64)
		}, false},
		{"records content", "systems/recordings.json", func(m *exportbundle.Manifest, s store) {
			s["blob/recordings/records"] = bytes.ToUpper(s["blob/recordings/records"])
		}, true},
		{"records size", "systems/accounts.json", func(m *exportbundle.Manifest, s store) {
			m.Systems[0].Records.Size--
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, s := threeSystems(t)
			tt.edit(m, s)
			var b bytes.Buffer
			err := exportbundle.Write(context.Background(), &b, m, s.open)
			if !errors.Is(err, exportbundle.ErrMismatch) {
				t.Fatalf("Write: %v, want ErrMismatch", err)
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error %q does not name %s", err, tt.path)
			}
			if tt.nothing && b.Len() > 0 {
				t.Errorf("%d bytes written before a records document was found wrong", b.Len())
			}
			if _, err := zip.NewReader(bytes.NewReader(b.Bytes()), int64(b.Len())); err == nil {
				t.Errorf("the unfinished bundle reads as a ZIP")
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name, want string
		edit       func(m *exportbundle.Manifest, s store) exportbundle.Opener
	}{
		{"invalid manifest", "format", func(m *exportbundle.Manifest, s store) exportbundle.Opener {
			m.Format = "other/1"
			return s.open
		}},
		{"no ref", "files/recordings/Webinar 1.mp4: no ref", func(m *exportbundle.Manifest, s store) exportbundle.Opener {
			m.Systems[2].Files[0].Ref = ""
			return s.open
		}},
		{"open fails", "open files/recordings/Webinar 1.mp4", func(m *exportbundle.Manifest, s store) exportbundle.Opener {
			delete(s, "blob/v1")
			return s.open
		}},
		{"records not a document", "systems/accounts.json", func(m *exportbundle.Manifest, s store) exportbundle.Opener {
			*m.Systems[0].Records = s.put("blob/accounts/records", "systems/accounts.json", []byte(`{"account": [1, 2]}`))
			return s.open
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, s := threeSystems(t)
			open := tt.edit(m, s)
			err := exportbundle.Write(context.Background(), io.Discard, m, open)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Write: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestWriteCancelled(t *testing.T) {
	m, s := threeSystems(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := exportbundle.Write(ctx, io.Discard, m, s.open); !errors.Is(err, context.Canceled) {
		t.Errorf("Write with a cancelled context: %v", err)
	}
}

func TestCheckTampered(t *testing.T) {
	m, s := threeSystems(t)
	bundle := write(t, m, s)
	const video = "files/recordings/Webinar 1.mp4"
	tests := []struct {
		name     string
		bundle   func() []byte
		want     []string // in the error
		mismatch bool
		manifest bool // Check still returns the manifest
	}{
		{"file altered", func() []byte {
			return rezip(t, bundle, func(name string, b []byte) ([]byte, bool) {
				if name == video {
					b = bytes.Clone(b)
					b[12345] ^= 0x80
				}
				return b, true
			}, nil)
		}, []string{video, "sha256"}, true, true},
		{"file truncated", func() []byte {
			return rezip(t, bundle, func(name string, b []byte) ([]byte, bool) {
				if name == video {
					b = b[:len(b)-1]
				}
				return b, true
			}, nil)
		}, []string{video, "bytes"}, true, true},
		{"file missing", func() []byte {
			return rezip(t, bundle, func(name string, b []byte) ([]byte, bool) { return b, name != video }, nil)
		}, []string{video + ": missing"}, false, true},
		{"records altered", func() []byte {
			return rezip(t, bundle, func(name string, b []byte) ([]byte, bool) {
				if name == "systems/accounts.json" {
					b = bytes.Replace(b, []byte("Ada"), []byte("Eve"), 1)
				}
				return b, true
			}, nil)
		}, []string{"systems/accounts.json"}, true, true},
		{"manifest says another sha256", func() []byte {
			m2, _ := threeSystems(t)
			m2.Systems[2].Files[0].SHA256 = strings.Repeat("ab", 32)
			enc, err := m2.Encode()
			if err != nil {
				t.Fatal(err)
			}
			return rezip(t, bundle, func(name string, b []byte) ([]byte, bool) {
				if name == "manifest.json" {
					b = enc
				}
				return b, true
			}, nil)
		}, []string{video}, true, true},
		{"manifest edited by hand", func() []byte {
			return rezip(t, bundle, func(name string, b []byte) ([]byte, bool) {
				if name == "manifest.json" {
					b = bytes.Replace(b, []byte(`"tenant": "Acme"`), []byte(`"tenant":"Acme"`), 1)
				}
				return b, true
			}, nil)
		}, []string{"manifest.json", "canonical"}, false, true},
		{"manifest missing", func() []byte {
			return rezip(t, bundle, func(name string, b []byte) ([]byte, bool) { return b, name != "manifest.json" }, nil)
		}, []string{"manifest.json: missing"}, false, false},
		{"manifest not JSON", func() []byte {
			return rezip(t, bundle, func(name string, b []byte) ([]byte, bool) {
				if name == "manifest.json" {
					b = b[:len(b)/2]
				}
				return b, true
			}, nil)
		}, []string{"manifest.json: not a manifest"}, false, false},
		{"file added", func() []byte {
			return rezip(t, bundle, func(_ string, b []byte) ([]byte, bool) { return b, true },
				map[string][]byte{"files/recordings/extra.exe": []byte("MZ")})
		}, []string{`"files/recordings/extra.exe": not in the manifest`}, false, true},
		{"index missing", func() []byte {
			return rezip(t, bundle, func(name string, b []byte) ([]byte, bool) { return b, name != "index.html" }, nil)
		}, []string{"index.html: missing"}, false, true},
		{"stored bytes flipped in place", func() []byte {
			b := bytes.Clone(bundle)
			zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range zr.File {
				if f.Name == video {
					off, err := f.DataOffset()
					if err != nil {
						t.Fatal(err)
					}
					b[off+100] ^= 1
				}
			}
			return b
		}, []string{video, "checksum"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.bundle()
			got, _, err := exportbundle.Check(bytes.NewReader(b), int64(len(b)))
			if err == nil {
				t.Fatal("Check passed a tampered bundle")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if errors.Is(err, exportbundle.ErrMismatch) != tt.mismatch {
				t.Errorf("errors.Is(%q, ErrMismatch) = %v", err, !tt.mismatch)
			}
			if (got != nil) != tt.manifest {
				t.Errorf("manifest returned: %v, want %v", got != nil, tt.manifest)
			}
		})
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	m, s := threeSystems(t)
	bundle := write(t, m, s)
	b := rezip(t, bundle, func(name string, b []byte) ([]byte, bool) {
		switch name {
		case "systems/accounts.json":
			return nil, false
		case "files/recordings/Webinar 1.mp4":
			return b[1:], true
		}
		return b, true
	}, nil)
	_, _, err := exportbundle.Check(bytes.NewReader(b), int64(len(b)))
	if err == nil {
		t.Fatal("Check passed")
	}
	for _, w := range []string{"2 problems", "systems/accounts.json: missing", "files/recordings/Webinar 1.mp4"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

func TestCheckNotAZip(t *testing.T) {
	b := []byte("this is not a zip file at all")
	if _, _, err := exportbundle.Check(bytes.NewReader(b), int64(len(b))); err == nil || !strings.Contains(err.Error(), "not a ZIP") {
		t.Errorf("Check: %v", err)
	}
}

func TestCheckProgress(t *testing.T) {
	m, s := threeSystems(t)
	bundle := write(t, m, s)
	var calls [][2]int64
	_, _, err := exportbundle.CheckProgress(bytes.NewReader(bundle), int64(len(bundle)), func(done, total int64) {
		calls = append(calls, [2]int64{done, total})
	})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, sys := range m.Systems {
		for _, f := range sys.Files {
			total += f.Size
		}
		if sys.Records != nil {
			total += sys.Records.Size
		}
	}
	if len(calls) < 4 || calls[0] != [2]int64{0, total} || calls[len(calls)-1] != [2]int64{total, total} {
		t.Fatalf("progress calls %v, want from 0 to %d", calls, total)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] < calls[i-1][0] || calls[i][1] != total {
			t.Errorf("progress goes from %v to %v", calls[i-1], calls[i])
		}
	}
}

func TestCSVNames(t *testing.T) {
	s := store{}
	sys := exportbundle.System{Name: "accounts", Outcome: "exported"}
	s.records(t, &sys, map[string]tables{
		"account":        {"profile": {{"a": 1}}, "settings": {{"b": 2}}},
		"identification": {"profile": {{"c": 3}}},
		"connection":     {"a/b": {{"d": 4}}, "a_b": {{"e": 5}}},
	})
	m := &exportbundle.Manifest{Format: exportbundle.Format, RequestID: "r", Tenant: "t", GeneratedAt: generatedAt, Systems: []exportbundle.System{sys}}
	bundle := write(t, m, s)
	_, names := entries(t, bundle)
	want := []string{
		"manifest.json", "systems/accounts.json",
		"csv/accounts/account.profile.csv", "csv/accounts/settings.csv",
		"csv/accounts/identification.profile.csv",
		"csv/accounts/a_b.csv", "csv/accounts/a_b-2.csv",
		"index.html",
	}
	if !slices.Equal(names, want) {
		t.Errorf("entries\n%q\nwant\n%q", names, want)
	}
	if _, _, err := exportbundle.Check(bytes.NewReader(bundle), int64(len(bundle))); err != nil {
		t.Errorf("Check: %v", err)
	}
}

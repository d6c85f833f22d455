package exportbundle_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/exportbundle"
)

// store is an in-memory blob store.
type store map[string][]byte

func (s store) open(_ context.Context, ref string) (io.ReadCloser, error) {
	b, ok := s[ref]
	if !ok {
		return nil, fmt.Errorf("no blob %q", ref)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// put stores b under ref and returns a File for it at path.
func (s store) put(ref, path string, b []byte) exportbundle.File {
	s[ref] = b
	sum := sha256.Sum256(b)
	return exportbundle.File{Path: path, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), Ref: ref}
}

// records stores a records document for system and returns it as the
// system's Records, with its categories and counts filled in.
func (s store) records(t testing.TB, sys *exportbundle.System, doc any) {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := exportbundle.ParseRecords(b)
	if err != nil {
		t.Fatal(err)
	}
	f := s.put("blob/"+sys.Name+"/records", exportbundle.RecordsPath(sys.Name), b)
	f.ContentType = "application/json"
	sys.Records = &f
	sys.Categories = r.Categories()
	sys.Counts = r.Counts()
}

// randomBytes returns n bytes that look like a video: they do not compress.
func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed)})
	_, _ = r.Read(b)
	return b
}

type row = map[string]any
type tables = map[string][]row

var generatedAt = time.Date(2026, 4, 14, 9, 30, 0, 0, time.UTC)

// demo is a realistic bundle: a person with an account, sign-ins, invoices,
// email events, a webinar recording and a comment, a sub-processor that has
// no export API and a service that holds nothing.
func demo(t testing.TB) (*exportbundle.Manifest, store) {
	s := store{}
	accounts := exportbundle.System{Name: "accounts", Outcome: "exported"}
	s.records(t, &accounts, map[string]tables{
		"account": {"profile": {{
			"name": "Camille Martin", "email": "camille.martin@example.org", "locale": "fr-FR",
			"created_at": "2023-02-11T08:14:00Z", "newsletter": true, "time_zone": "Europe/Paris",
		}}},
		"identification": {"identifiers": {{"user_id": "usr_7Hq2Lx", "phone": "+33 6 12 34 56 78", "phone_verified": true}}},
		"connection": {"login_history": {
			{"at": "2026-04-12T18:02:44Z", "ip_address": "203.0.113.24", "country": "FR", "device": "Firefox 137 on Windows", "method": "password"},
			{"at": "2026-04-09T07:41:10Z", "ip_address": "203.0.113.24", "country": "FR", "device": "Firefox 137 on Windows", "method": "password"},
			{"at": "2026-04-02T12:15:03Z", "ip_address": "198.51.100.7", "country": "BE", "device": "Safari on iPhone", "method": "magic link"},
			{"at": "2026-03-28T20:58:31Z", "ip_address": "203.0.113.24", "country": "FR", "device": "Firefox 136 on Windows", "method": "password"},
		}},
	})
	billing := exportbundle.System{Name: "billing", Outcome: "exported"}
	s.records(t, &billing, map[string]tables{
		"billing": {
			"invoices": {
				{"number": "INV-2026-0312", "issued_at": "2026-03-01", "amount": 49.00, "currency": "EUR", "status": "paid", "lines": []row{{"item": "Pro plan, March", "amount": 49}}},
				{"number": "INV-2026-0211", "issued_at": "2026-02-01", "amount": 49.00, "currency": "EUR", "status": "paid", "lines": []row{{"item": "Pro plan, February", "amount": 49}}},
			},
			"payment_methods": {{"type": "card", "brand": "Visa", "last4": "4242", "expires": "09/2028"}},
		},
	})
	email := exportbundle.System{Name: "emailanalytics", Outcome: "exported"}
	s.records(t, &email, map[string]tables{
		"engagement": {"email_events": {
			{"at": "2026-04-10T09:00:12Z", "campaign": "April product news", "event": "delivered"},
			{"at": "2026-04-10T12:31:40Z", "campaign": "April product news", "event": "opened"},
			{"at": "2026-04-10T12:32:05Z", "campaign": "April product news", "event": "clicked", "link": "Webinar sign-up"},
			{"at": "2026-03-12T09:00:03Z", "campaign": "Webinar reminder", "event": "delivered"},
		}},
	})
	recordings := exportbundle.System{Name: "recordings", Outcome: "exported"}
	s.records(t, &recordings, map[string]tables{
		"recordings":    {"recordings": {{"title": "Quarterly product update", "recorded_at": "2026-03-12T16:00:00Z", "duration": "47 min", "role": "attendee"}}},
		"contributions": {"comments": {{"at": "2026-03-12T16:21:09Z", "webinar": "Quarterly product update", "text": "Will the export API support CSV?"}}},
	})
	video := s.put("blob/recordings/v1", exportbundle.FilePath("recordings", "Quarterly product update (2026-03-12).mp4"), randomBytes(1, 3<<20))
	video.Category, video.ContentType = "recordings", "video/mp4"
	recordings.Files = []exportbundle.File{video}
	recordings.Categories = append(recordings.Categories, "recordings")
	sub := exportbundle.System{Name: "subprocessors", Outcome: "exported",
		Note: "MailRelay Ltd, which sends our emails, was contacted: it has no export API, so we asked it by email and will send you its answer."}
	s.records(t, &sub, map[string]tables{
		"sub_processors": {"contacted": {
			{"name": "MailRelay Ltd", "purpose": "Sending emails", "contacted_at": "2026-04-13", "answer": "awaited"},
			{"name": "StreamCast BV", "purpose": "Hosting webinars", "contacted_at": "2026-04-13", "answer": "holds nothing about you"},
		}},
	})
	newsletter := exportbundle.System{Name: "newsletter", Outcome: "not_found"}
	return &exportbundle.Manifest{
		Format:      exportbundle.Format,
		RequestID:   "req-2026-04-7f3a9c",
		Tenant:      "Acme Webinars",
		GeneratedAt: generatedAt,
		Systems:     []exportbundle.System{accounts, billing, email, newsletter, recordings, sub},
	}, s
}

// write writes m's bundle and returns it.
func write(t testing.TB, m *exportbundle.Manifest, s store) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := exportbundle.Write(context.Background(), &b, m, s.open); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return b.Bytes()
}

// entries reads a ZIP's entries by name.
func entries(t testing.TB, bundle []byte) (map[string][]byte, []string) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatalf("not a ZIP: %v", err)
	}
	got := map[string][]byte{}
	var names []string
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		got[f.Name] = b
		names = append(names, f.Name)
	}
	return got, names
}

// rezip rebuilds a ZIP, passing each entry through edit, which returns the
// entry's new content, or false to leave it out; then adds extra. An entry
// edit leaves as it is is copied as it is; one it changes keeps its method.
func rezip(t testing.TB, bundle []byte, edit func(name string, b []byte) ([]byte, bool), extra map[string][]byte) []byte {
	t.Helper()
	all, _ := entries(t, bundle)
	zr, err := zip.NewReader(bytes.NewReader(bundle), int64(len(bundle)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	add := func(name string, method uint16, b []byte) {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range zr.File {
		b, ok := edit(f.Name, all[f.Name])
		switch {
		case !ok:
		case bytes.Equal(b, all[f.Name]):
			if err := zw.Copy(f); err != nil {
				t.Fatal(err)
			}
		default:
			add(f.Name, f.Method, b)
		}
	}
	for name, b := range extra {
		add(name, zip.Deflate, b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

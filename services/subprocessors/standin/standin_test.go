package standin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

const token = "t0ken"

func call(t *testing.T, base, method, path, header, value, body string) (int, any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		req.Header.Set(header, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s: answer is not JSON: %q", method, path, b)
		}
	}
	return resp.StatusCode, out
}

func TestVendors(t *testing.T) {
	s := New(20, token)
	srv := httptest.NewServer(s)
	defer srv.Close()
	p1 := url.PathEscape("Person-0001@Example.com")
	bearer := "Bearer " + token
	tests := []struct {
		name, method, path, header, value, body string
		want                                    int
	}{
		{"enrichment access", "GET", "/enrichment/v1/people/" + p1, "Authorization", bearer, "", 200},
		{"enrichment no token", "GET", "/enrichment/v1/people/" + p1, "", "", "", 401},
		{"enrichment wrong token", "GET", "/enrichment/v1/people/" + p1, "Authorization", "Bearer nope", "", 401},
		{"enrichment unknown person", "GET", "/enrichment/v1/people/person-0014@example.com", "Authorization", bearer, "", 404},
		{"enrichment person beyond n", "GET", "/enrichment/v1/people/person-0021@example.com", "Authorization", bearer, "", 404},
		{"enrichment delete", "DELETE", "/enrichment/v1/people/" + p1, "Authorization", bearer, "", 200},
		{"enrichment gone", "GET", "/enrichment/v1/people/" + p1, "Authorization", bearer, "", 404},
		{"enrichment delete again", "DELETE", "/enrichment/v1/people/" + p1, "Authorization", bearer, "", 404},
		{"support access", "GET", "/support-desk/api/v2/contacts/" + p1, "X-Api-Key", token, "", 200},
		{"support bearer is not its auth", "GET", "/support-desk/api/v2/contacts/" + p1, "Authorization", bearer, "", 401},
		{"support erasure", "POST", "/support-desk/api/v2/erasure-requests", "X-Api-Key", token, `{"email": "person-0001@example.com"}`, 200},
		{"support gone", "GET", "/support-desk/api/v2/contacts/" + p1, "X-Api-Key", token, "", 404},
		{"support erasure without email", "POST", "/support-desk/api/v2/erasure-requests", "X-Api-Key", token, `{}`, 400},
		{"error tracking delete", "DELETE", "/error-tracking/api/0/users/" + p1, "Authorization", bearer, "", 204},
		{"error tracking gone", "GET", "/error-tracking/api/0/users/" + p1, "Authorization", bearer, "", 404},
		{"captioning has no access API", "GET", "/captioning/v1/attendees/" + p1, "Authorization", bearer, "", 405},
		{"captioning notify", "POST", "/captioning/v1/privacy-requests", "Authorization", bearer, `{"type": "access", "email": "Person-0001@example.com", "reference": "req_1"}`, 202},
		{"captioning notify no token", "POST", "/captioning/v1/privacy-requests", "", "", `{"type": "access", "email": "person-0001@example.com"}`, 401},
		{"captioning notify without email", "POST", "/captioning/v1/privacy-requests", "Authorization", bearer, `{"type": "access"}`, 400},
		{"captioning notify of another type", "POST", "/captioning/v1/privacy-requests", "Authorization", bearer, `{"type": "marketing", "email": "person-0001@example.com"}`, 400},
		{"captioning notify not JSON", "POST", "/captioning/v1/privacy-requests", "Authorization", bearer, `email=person-0001@example.com`, 400},
		{"captioning delete", "DELETE", "/captioning/v1/attendees/" + p1, "Authorization", bearer, "", 200},
		{"captioning delete again", "DELETE", "/captioning/v1/attendees/" + p1, "Authorization", bearer, "", 404},
		{"others untouched", "GET", "/error-tracking/api/0/users/person-0002@example.com", "Authorization", bearer, "", 200},
	}
	for _, tt := range tests { // in order: later rows see earlier deletions
		code, _ := call(t, srv.URL, tt.method, tt.path, tt.header, tt.value, tt.body)
		if code != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, code, tt.want)
		}
	}
	// Notifications: the accepted one only, its email normalized.
	want := []Notification{{Type: "access", Email: "person-0001@example.com", Reference: "req_1"}}
	if got := s.Notifications(Captioning); !reflect.DeepEqual(got, want) {
		t.Errorf("captioning notifications = %+v, want %+v", got, want)
	}
	if got := s.Notifications(Enrichment); len(got) != 0 {
		t.Errorf("enrichment notifications = %+v", got)
	}
	if n := s.Deletions(Captioning); n != 2 {
		t.Errorf("captioning deletions = %d, want 2 (notifications are not deletions)", n)
	}
	for _, v := range s.Vendors() {
		if s.Holds(v, "person-0001@example.com") {
			t.Errorf("%s still holds person 1", v)
		}
		if !s.Holds(v, "person-0002@example.com") {
			t.Errorf("%s lost person 2", v)
		}
	}
}

func TestDemoPeople(t *testing.T) {
	s := New(300, token)
	for i := 1; i <= 10; i++ {
		for _, v := range s.Vendors() {
			if !s.Holds(v, email(i)) {
				t.Errorf("%s does not hold person %d", v, i)
			}
		}
	}
	var nowhere, somewhere int
	for i := 11; i <= 300; i++ {
		held := false
		for _, v := range s.Vendors() {
			held = held || s.Holds(v, email(i))
		}
		if held {
			somewhere++
		} else {
			nowhere++
		}
	}
	if nowhere == 0 || somewhere == 0 {
		t.Fatalf("%d people held somewhere, %d nowhere: want both", somewhere, nowhere)
	}
}

func TestFailNext(t *testing.T) {
	s := New(5, token)
	srv := httptest.NewServer(s)
	defer srv.Close()
	// The knob, over HTTP as a demo would turn it.
	if code, _ := call(t, srv.URL, "POST", "/_standin/fail?vendor=enrichment&calls=2", "", "", ""); code != http.StatusNoContent {
		t.Fatalf("fail knob: %d", code)
	}
	if code, _ := call(t, srv.URL, "POST", "/_standin/fail?vendor=nobody&calls=2", "", "", ""); code != http.StatusBadRequest {
		t.Fatalf("fail knob for an unknown vendor: %d", code)
	}
	path := "/enrichment/v1/people/person-0001@example.com"
	for i, want := range []int{503, 503, 200, 404} {
		if code, _ := call(t, srv.URL, "DELETE", path, "Authorization", "Bearer "+token, ""); code != want {
			t.Fatalf("call %d: %d, want %d", i+1, code, want)
		}
	}
	if s.Deletions(Enrichment) != 4 {
		t.Fatalf("deletions = %d, want 4", s.Deletions(Enrichment))
	}
	// Other vendors were not affected.
	if code, _ := call(t, srv.URL, "GET", "/support-desk/api/v2/contacts/person-0001@example.com", "X-Api-Key", token, ""); code != 200 {
		t.Fatalf("support_desk: %d", code)
	}
}

// Each access API answers the person's records in its own shape, the rows
// being what Records says the vendor holds.
func TestAccessShapes(t *testing.T) {
	s := New(20, token)
	srv := httptest.NewServer(s)
	defer srv.Close()
	e := "person-0005@example.com"
	tests := []struct {
		vendor, path, header, value string
		rows                        func(body any) any // the rows in the answer
	}{
		{Enrichment, "/enrichment/v1/people/" + e, "Authorization", "Bearer " + token, func(b any) any { return []any{b} }},
		{SupportDesk, "/support-desk/api/v2/contacts/" + e, "X-Api-Key", token, func(b any) any {
			m, _ := b.(map[string]any)
			return m["records"]
		}},
		{ErrorTracking, "/error-tracking/api/0/users/" + e, "Authorization", "Bearer " + token, func(b any) any { return b }},
	}
	for _, tt := range tests {
		t.Run(tt.vendor, func(t *testing.T) {
			code, body := call(t, srv.URL, "GET", tt.path, tt.header, tt.value, "")
			if code != http.StatusOK {
				t.Fatalf("status %d", code)
			}
			want := s.Records(tt.vendor, e)
			if len(want) == 0 {
				t.Fatal("the vendor holds no records of the person")
			}
			var wantJSON any
			b, _ := json.Marshal(want)
			json.Unmarshal(b, &wantJSON)
			if got := tt.rows(body); !reflect.DeepEqual(got, wantJSON) {
				t.Fatalf("answer's rows = %v, want %v", got, wantJSON)
			}
			for _, row := range want {
				if !strings.Contains(string(mustJSON(t, row)), `"`+e+`"`) {
					t.Errorf("row %v does not say whose it is", row)
				}
			}
		})
	}
	if s.Records(Captioning, e) == nil {
		t.Error("captioning holds no records of person 5: nothing for an export to miss")
	}
	if s.Records(Enrichment, "person-0014@example.com") != nil {
		t.Error("records of a person the vendor does not hold")
	}
}

// A look-alike of a demo person is another person: neither one's records
// show in the other's answer.
func TestLookAlike(t *testing.T) {
	s := New(20, token)
	srv := httptest.NewServer(s)
	defer srv.Close()
	real, alike := "person-0001@example.com", "person-00010@example.com"
	n := s.AddPerson(alike)
	if n != 21 {
		t.Fatalf("look-alike is person %d, want 21", n)
	}
	for _, e := range []string{real, alike} {
		code, body := call(t, srv.URL, "GET", "/error-tracking/api/0/users/"+e, "Authorization", "Bearer "+token, "")
		if code != http.StatusOK {
			t.Fatalf("%s: %d", e, code)
		}
		rows, _ := body.([]any)
		for _, r := range rows {
			if got := r.(map[string]any)["user_email"]; got != e {
				t.Errorf("answer for %s holds a row of %v", e, got)
			}
		}
	}
	if code, _ := call(t, srv.URL, "DELETE", "/enrichment/v1/people/"+alike, "Authorization", "Bearer "+token, ""); code != 200 {
		t.Fatalf("delete look-alike: %d", code)
	}
	if !s.Holds(Enrichment, real) || s.Holds(Enrichment, alike) {
		t.Fatal("deleting the look-alike touched the real person")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

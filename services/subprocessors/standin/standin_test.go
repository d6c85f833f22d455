package standin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

const token = "t0ken"

func call(t *testing.T, base, method, path, header, value, body string) (int, map[string]any) {
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
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
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
		{"others untouched", "GET", "/error-tracking/api/0/users/person-0002@example.com", "Authorization", bearer, "", 200},
	}
	for _, tt := range tests { // in order: later rows see earlier deletions
		code, _ := call(t, srv.URL, tt.method, tt.path, tt.header, tt.value, tt.body)
		if code != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, code, tt.want)
		}
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

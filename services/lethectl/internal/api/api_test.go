package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestTimeUnmarshal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: `"2025-01-31T09:00:00Z"`, want: time.Date(2025, 1, 31, 9, 0, 0, 0, time.UTC)},
		{in: `"2025-01-31T10:00:00.5+01:00"`, want: time.Date(2025, 1, 31, 9, 0, 0, 5e8, time.UTC)},
		{in: `"2035-12-31"`, want: time.Date(2035, 12, 31, 0, 0, 0, 0, time.UTC)},
		{in: `""`},
		{in: `null`},
		{in: `"0001-01-01T00:00:00Z"`},
		{in: `"31/12/2035"`, wantErr: true},
		{in: `12`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got struct {
				At Time `json:"at"`
			}
			err := json.Unmarshal([]byte(`{"at":`+tt.in+`}`), &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !got.At.Equal(tt.want) {
				t.Errorf("got %v, want %v", got.At.Time, tt.want)
			}
			if tt.want.IsZero() && !got.At.IsZero() {
				t.Errorf("got %v, want zero", got.At.Time)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.EscapedPath() {
		case "/v1/requests/json-error":
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"error":"request is open"}`)
		case "/v1/requests/html-error":
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>proxy error</html>")
		case "/v1/requests/not-json":
			fmt.Fprint(w, "<html>ok</html>")
		case "/v1/requests/a%2Fb%3F":
			// The id was escaped into one path segment.
			fmt.Fprint(w, `{"id":"a/b?","state":"open","tasks":[]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"error":"no route for %s"}`, r.URL.EscapedPath())
		}
	}))
	defer srv.Close()
	c := New(srv.URL+"/", "", nil)
	ctx := context.Background()

	_, _, err := c.Get(ctx, "json-error")
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 409 || apiErr.Message != "request is open" {
		t.Errorf("json error: %v", err)
	}
	if !IsStatus(err, http.StatusConflict) || IsStatus(err, http.StatusNotFound) {
		t.Errorf("IsStatus wrong for %v", err)
	}
	if _, _, err := c.Get(ctx, "html-error"); err == nil || err.Error() != "bad gateway (HTTP 502)" {
		t.Errorf("non-JSON error body: %v", err)
	}
	if _, _, err := c.Get(ctx, "not-json"); err == nil || !strings.Contains(err.Error(), "decode reply") {
		t.Errorf("non-JSON success body: %v", err)
	}
	r, _, err := c.Get(ctx, "a/b?")
	if err != nil || r.ID != "a/b?" {
		t.Errorf("escaped id: %+v, %v", r, err)
	}

	srv.Close()
	if _, _, err := c.Get(ctx, "x"); err == nil || !strings.HasPrefix(err.Error(), "GET "+srv.URL+"/v1/requests/x: ") {
		t.Errorf("connection error: %v", err)
	}
}

func TestProofEndpoints(t *testing.T) {
	t.Parallel()
	var (
		mu      sync.Mutex
		accepts []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accepts = append(accepts, r.URL.Path+" "+r.Header.Get("Accept"))
		mu.Unlock()
		switch r.URL.Path {
		case "/v1/requests/r/1/certificate": // the id escaped: r%2F1
			fmt.Fprint(w, "{\"version\":1}\n")
		case "/v1/requests/r/1/certificate.html":
			fmt.Fprint(w, "<html></html>")
		case "/v1/log/consistency":
			q := r.URL.Query()
			// Two hashes: all zero bytes, then all 0xff.
			fmt.Fprintf(w, `{"old":%s,"new":%s,"proof":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","//////////////////////////////////////////8="]}`, q.Get("old"), q.Get("new"))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c := New(srv.URL, "", nil)
	ctx := context.Background()

	var b strings.Builder
	if n, err := c.Certificate(ctx, "r/1", false, &b); err != nil || b.String() != "{\"version\":1}\n" || n != int64(b.Len()) {
		t.Errorf("certificate: %q, %d, %v", b.String(), n, err)
	}
	b.Reset()
	if _, err := c.Certificate(ctx, "r/1", true, &b); err != nil || b.String() != "<html></html>" {
		t.Errorf("certificate page: %q, %v", b.String(), err)
	}
	cons, err := c.Consistency(ctx, 3, 10)
	if err != nil || cons.Old != 3 || cons.New != 10 || len(cons.Proof) != 2 || cons.Proof[0][0] != 0 || cons.Proof[1][31] != 0xff {
		t.Errorf("consistency: %+v, %v", cons, err)
	}
	want := []string{
		"/v1/requests/r/1/certificate application/json",
		"/v1/requests/r/1/certificate.html text/html",
		"/v1/log/consistency application/json",
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(accepts, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(accepts, "\n"), strings.Join(want, "\n"))
	}
}

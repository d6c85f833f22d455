// Package standin plays the demo's sub-processors: one HTTP server standing
// in for several vendors, each holding records of a deterministic set of demo
// people, with the access and deletion APIs that vendors.demo.yaml points at.
// It is the edge Lethe does not own, faked for the demo and for tests.
//
//	enrichment      GET, DELETE /enrichment/v1/people/{email}       Authorization: Bearer <token>
//	support_desk    GET /support-desk/api/v2/contacts/{email}       X-Api-Key: <token>
//	                POST /support-desk/api/v2/erasure-requests {"email": "..."}
//	error_tracking  GET, DELETE /error-tracking/api/0/users/{email} Authorization: Bearer <token>
//
// An access call answers 200 with the person's record or 404; a deletion
// answers 200 (204 for error_tracking) or 404 if the vendor holds nothing.
// A wrong or missing token gets 401. POST /_standin/fail?vendor=V&calls=K
// (or [Server.FailNext]) makes vendor V answer 503 to its next K calls.
package standin

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/pkg/pseudonym"
)

// DemoToken is the demo's vendor secret: what the stand-in binary accepts
// and the demo connector sends unless LETHE_DEMO_VENDOR_TOKEN says otherwise.
const DemoToken = "lethe-demo-vendor-token"

// Vendors the stand-in plays, named as in vendors.demo.yaml.
const (
	Enrichment    = "enrichment"
	SupportDesk   = "support_desk"
	ErrorTracking = "error_tracking"
)

// holds says which demo people each vendor has records of: people 1..10 are
// everywhere (tests and docs use them); the rest vary, and some are nowhere.
var holds = map[string]func(i int) bool{
	Enrichment:    func(i int) bool { return i <= 10 || i%2 == 1 },
	SupportDesk:   func(i int) bool { return i <= 10 || i%3 == 0 },
	ErrorTracking: func(i int) bool { return i <= 10 || i%5 == 2 },
}

// Server is the stand-in. It is an http.Handler, safe for concurrent use.
type Server struct {
	token string
	mux   *http.ServeMux

	mu        sync.Mutex
	people    map[string]map[string]int // vendor -> email -> person number
	failNext  map[string]int
	deletions map[string]int
}

// New returns a stand-in whose vendors hold records of demo people 1..n
// (person-0001@example.com, ...) and accept token.
func New(n int, token string) *Server {
	s := &Server{token: token, mux: http.NewServeMux(), people: map[string]map[string]int{},
		failNext: map[string]int{}, deletions: map[string]int{}}
	for v, h := range holds {
		s.people[v] = map[string]int{}
		for i := 1; i <= n; i++ {
			if h(i) {
				s.people[v][email(i)] = i
			}
		}
	}
	bearer := func(r *http.Request) string { return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") }
	apiKey := func(r *http.Request) string { return r.Header.Get("X-Api-Key") }
	fromPath := func(r *http.Request) string { return r.PathValue("email") }

	s.handle("GET /enrichment/v1/people/{email}", Enrichment, bearer, s.get(Enrichment, fromPath))
	s.handle("DELETE /enrichment/v1/people/{email}", Enrichment, bearer, s.del(Enrichment, fromPath, http.StatusOK))
	s.handle("GET /support-desk/api/v2/contacts/{email}", SupportDesk, apiKey, s.get(SupportDesk, fromPath))
	s.handle("POST /support-desk/api/v2/erasure-requests", SupportDesk, apiKey, s.del(SupportDesk, fromBody, http.StatusOK))
	s.handle("GET /error-tracking/api/0/users/{email}", ErrorTracking, bearer, s.get(ErrorTracking, fromPath))
	s.handle("DELETE /error-tracking/api/0/users/{email}", ErrorTracking, bearer, s.del(ErrorTracking, fromPath, http.StatusNoContent))
	s.mux.HandleFunc("POST /_standin/fail", func(w http.ResponseWriter, r *http.Request) {
		k, err := strconv.Atoi(r.URL.Query().Get("calls"))
		v := r.URL.Query().Get("vendor")
		if _, ok := holds[v]; !ok || err != nil || k < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want ?vendor=<name>&calls=<n>"})
			return
		}
		s.FailNext(v, k)
		w.WriteHeader(http.StatusNoContent)
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// FailNext makes vendor answer 503 to its next k calls, whatever they are.
func (s *Server) FailNext(vendor string, k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext[vendor] = k
}

// Holds reports whether vendor holds a record of email, looking at the
// vendor's data directly.
func (s *Server) Holds(vendor, email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.people[vendor][pseudonym.Normalize(email)]
	return ok
}

// Deletions is how many deletion calls vendor received, failed ones included.
func (s *Server) Deletions(vendor string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deletions[vendor]
}

// Vendors lists the vendors the stand-in plays.
func (s *Server) Vendors() []string {
	out := make([]string, 0, len(holds))
	for v := range holds {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// handle serves a vendor's route behind its failure knob and its auth check.
func (s *Server) handle(pattern, vendor string, secret func(*http.Request) string, h http.HandlerFunc) {
	deletion := !strings.HasPrefix(pattern, "GET ")
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if deletion {
			s.deletions[vendor]++
		}
		fail := s.failNext[vendor] > 0
		if fail {
			s.failNext[vendor]--
		}
		s.mu.Unlock()
		if fail {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily unavailable"})
			return
		}
		if subtle.ConstantTimeCompare([]byte(secret(r)), []byte(s.token)) != 1 || s.token == "" {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "bad credentials"})
			return
		}
		h(w, r)
	})
}

func (s *Server) get(vendor string, who func(*http.Request) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		i, ok := s.people[vendor][pseudonym.Normalize(who(r))]
		s.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
			return
		}
		writeJSON(w, http.StatusOK, record(vendor, i))
	}
}

func (s *Server) del(vendor string, who func(*http.Request) string, okStatus int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e := pseudonym.Normalize(who(r))
		if e == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "no email"})
			return
		}
		s.mu.Lock()
		_, ok := s.people[vendor][e]
		delete(s.people[vendor], e)
		s.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
			return
		}
		if okStatus == http.StatusNoContent {
			w.WriteHeader(okStatus)
			return
		}
		writeJSON(w, okStatus, map[string]string{"status": "erased"})
	}
}

func fromBody(r *http.Request) string {
	var b struct {
		Email string `json:"email"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&b); err != nil {
		return ""
	}
	return b.Email
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func email(i int) string { return fmt.Sprintf("person-%04d@example.com", i) }
func day(i, d int) string {
	return time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC).AddDate(0, 0, i+d).Format(time.RFC3339)
}
func pick(xs []string, i int) string { return xs[i%len(xs)] }

// record is what vendor holds of person i: deterministic sample data.
func record(vendor string, i int) any {
	uid := fmt.Sprintf("user-%04d", i)
	switch vendor {
	case Enrichment:
		return map[string]any{
			"email": email(i), "company": pick([]string{"Acme Corp", "Globex", "Initech", "Umbrella"}, i),
			"job_title":    pick([]string{"Engineer", "Marketing lead", "CTO", "Analyst", "Designer"}, i),
			"company_size": pick([]string{"1-10", "11-50", "51-200", "201-1000"}, i*7),
			"enriched_at":  day(i, 0),
		}
	case SupportDesk:
		tickets := []map[string]string{}
		for k := range 1 + i%3 {
			tickets = append(tickets, map[string]string{
				"id": fmt.Sprintf("T-%05d", i*10+k), "subject": pick([]string{"Cannot join webinar", "Invoice question", "Audio issues", "Change my email"}, i+k),
				"created_at": day(i, k*5),
			})
		}
		return map[string]any{"email": email(i), "user_id": uid, "tickets": tickets}
	default: // ErrorTracking
		events := []map[string]string{}
		for k := range 1 + i%2 {
			events = append(events, map[string]string{
				"id": fmt.Sprintf("evt-%06d", i*100+k), "message": pick([]string{"TypeError: player is null", "WebSocket closed", "Timeout loading slides"}, i*3+k),
				"at": day(i, k),
			})
		}
		return map[string]any{"user": map[string]string{"id": uid, "email": email(i)}, "events": events}
	}
}

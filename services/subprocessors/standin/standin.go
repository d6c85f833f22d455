// Package standin plays the demo's sub-processors: one HTTP server standing
// in for several vendors, each holding records of a deterministic set of demo
// people, with the access, deletion and notification APIs that
// vendors.demo.yaml points at. It is the edge Lethe does not own, faked for
// the demo and for tests.
//
//	enrichment      GET, DELETE /enrichment/v1/people/{email}         Authorization: Bearer <token>
//	support_desk    GET /support-desk/api/v2/contacts/{email}         X-Api-Key: <token>
//	                POST /support-desk/api/v2/erasure-requests {"email": "..."}
//	error_tracking  GET, DELETE /error-tracking/api/0/users/{email}   Authorization: Bearer <token>
//	captioning      DELETE /captioning/v1/attendees/{email}           Authorization: Bearer <token>
//	                POST /captioning/v1/privacy-requests {"type": "access", "email": "...", ...}
//
// An access call answers 404 if the vendor holds nothing of the person, or
// 200 with the person's records, in a shape of its own: enrichment's profile
// is one JSON object, support_desk's tickets are {"records": [...]},
// error_tracking's events a JSON array. captioning has no access API: its
// privacy-requests endpoint takes a request, answers 202 and records it (see
// [Server.Notifications]), as a vendor whose staff answer by hand would. A
// deletion answers 200 (204 for error_tracking) or 404 if the vendor holds
// nothing. A wrong or missing token gets 401. POST
// /_standin/fail?vendor=V&calls=K (or [Server.FailNext]) makes vendor V
// answer 503 to its next K calls.
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
	Captioning    = "captioning" // no access API
)

// holds says which demo people each vendor has records of: people 1..10 are
// everywhere (tests and docs use them); the rest vary, and some are nowhere.
var holds = map[string]func(i int) bool{
	Enrichment:    func(i int) bool { return i <= 10 || i%2 == 1 },
	SupportDesk:   func(i int) bool { return i <= 10 || i%3 == 0 },
	ErrorTracking: func(i int) bool { return i <= 10 || i%5 == 2 },
	Captioning:    func(i int) bool { return i <= 10 || i%4 == 1 },
}

// Notification is a privacy request a vendor without an access API received.
type Notification struct {
	Type      string `json:"type"`
	Email     string `json:"email"`
	Reference string `json:"reference"`
	RespondBy string `json:"respond_by"`
}

// Server is the stand-in. It is an http.Handler, safe for concurrent use.
type Server struct {
	token string
	mux   *http.ServeMux

	mu            sync.Mutex
	people        map[string]map[string]int // vendor -> email -> person number
	last          int                       // the highest person number given
	failNext      map[string]int
	deletions     map[string]int
	notifications map[string][]Notification
}

// New returns a stand-in whose vendors hold records of demo people 1..n
// (person-0001@example.com, ...) and accept token.
func New(n int, token string) *Server {
	s := &Server{token: token, mux: http.NewServeMux(), people: map[string]map[string]int{}, last: n,
		failNext: map[string]int{}, deletions: map[string]int{}, notifications: map[string][]Notification{}}
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

	s.handle("GET /enrichment/v1/people/{email}", Enrichment, access, bearer, s.get(Enrichment, fromPath, func(rows []map[string]any) any { return rows[0] }))
	s.handle("DELETE /enrichment/v1/people/{email}", Enrichment, deletion, bearer, s.del(Enrichment, fromPath, http.StatusOK))
	s.handle("GET /support-desk/api/v2/contacts/{email}", SupportDesk, access, apiKey, s.get(SupportDesk, fromPath, func(rows []map[string]any) any {
		return map[string]any{"records": rows, "count": len(rows)}
	}))
	s.handle("POST /support-desk/api/v2/erasure-requests", SupportDesk, deletion, apiKey, s.del(SupportDesk, fromBody, http.StatusOK))
	s.handle("GET /error-tracking/api/0/users/{email}", ErrorTracking, access, bearer, s.get(ErrorTracking, fromPath, func(rows []map[string]any) any { return rows }))
	s.handle("DELETE /error-tracking/api/0/users/{email}", ErrorTracking, deletion, bearer, s.del(ErrorTracking, fromPath, http.StatusNoContent))
	s.handle("DELETE /captioning/v1/attendees/{email}", Captioning, deletion, bearer, s.del(Captioning, fromPath, http.StatusOK))
	s.handle("POST /captioning/v1/privacy-requests", Captioning, notification, bearer, s.notify(Captioning))
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

// AddPerson gives every vendor records of one more person, with the given
// email (a look-alike of a demo person, say), and returns the person's
// number, which their records' identifiers derive from.
func (s *Server) AddPerson(email string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last++
	for v := range holds {
		s.people[v][pseudonym.Normalize(email)] = s.last
	}
	return s.last
}

// Holds reports whether vendor holds a record of email, looking at the
// vendor's data directly.
func (s *Server) Holds(vendor, email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.people[vendor][pseudonym.Normalize(email)]
	return ok
}

// Records returns the records vendor holds of email, looking at the
// vendor's data directly: what its access API answers, as rows, or nil.
func (s *Server) Records(vendor, email string) []map[string]any {
	e := pseudonym.Normalize(email)
	s.mu.Lock()
	i, ok := s.people[vendor][e]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	return records(vendor, i, e)
}

// Deletions is how many deletion calls vendor received, failed ones included.
func (s *Server) Deletions(vendor string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deletions[vendor]
}

// Notifications are the privacy requests vendor accepted, in order.
func (s *Server) Notifications(vendor string) []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Notification(nil), s.notifications[vendor]...)
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

// Kinds of route, for the counters.
const (
	access = iota
	deletion
	notification
)

// handle serves a vendor's route behind its failure knob and its auth check.
func (s *Server) handle(pattern, vendor string, kind int, secret func(*http.Request) string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if kind == deletion {
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

// get answers the records of the person the request names, in the shape
// the vendor's API gives them, or 404. The lookup is by the whole
// normalized email: a look-alike address is another person.
func (s *Server) get(vendor string, who func(*http.Request) string, shape func([]map[string]any) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e := pseudonym.Normalize(who(r))
		s.mu.Lock()
		i, ok := s.people[vendor][e]
		s.mu.Unlock()
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
			return
		}
		writeJSON(w, http.StatusOK, shape(records(vendor, i, e)))
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

// notify takes a privacy request ({"type": "access" or "erasure",
// "email": ..., "reference": ..., "respond_by": ...}) for the vendor's staff
// and answers 202, whether or not the vendor holds the person: it does not
// say.
func (s *Server) notify(vendor string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var n Notification
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&n); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want a JSON request"})
			return
		}
		n.Email = pseudonym.Normalize(n.Email)
		if n.Email == "" || (n.Type != "access" && n.Type != "erasure") {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want "type" ("access" or "erasure") and "email"`})
			return
		}
		s.mu.Lock()
		s.notifications[vendor] = append(s.notifications[vendor], n)
		id := len(s.notifications[vendor])
		s.mu.Unlock()
		writeJSON(w, http.StatusAccepted, map[string]string{"id": fmt.Sprintf("PR-%06d", id), "status": "received"})
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

// records is what vendor holds of person i, whose email is e: deterministic
// sample rows, each holding the person's email or user id as the vendor's
// own rows would. All values are strings.
func records(vendor string, i int, e string) []map[string]any {
	uid := fmt.Sprintf("user-%04d", i)
	var rows []map[string]any
	switch vendor {
	case Enrichment: // one profile
		rows = append(rows, map[string]any{
			"email": e, "company": pick([]string{"Acme Corp", "Globex", "Initech", "Umbrella"}, i),
			"job_title":    pick([]string{"Engineer", "Marketing lead", "CTO", "Analyst", "Designer"}, i),
			"company_size": pick([]string{"1-10", "11-50", "51-200", "201-1000"}, i*7),
			"industry":     pick([]string{"Software", "Retail", "Education", "Healthcare", "Finance", "Media"}, i*3),
			"country":      pick([]string{"FR", "DE", "NL", "ES", "IE", "BE"}, i*5),
			"source":       pick([]string{"public company page", "professional network profile", "company registry"}, i),
			"enriched_at":  day(i, 0),
		})
	case SupportDesk: // tickets
		for k := range 1 + i%3 {
			rows = append(rows, map[string]any{
				"ticket_id":       fmt.Sprintf("T-%05d", i*10+k),
				"requester_email": e,
				"subject":         pick([]string{"Cannot join webinar", "Invoice question", "Audio issues", "Change my email"}, i+k),
				"channel":         pick([]string{"email", "chat", "web form"}, i+2*k),
				"status":          pick([]string{"solved", "closed", "open"}, i*k+k),
				"created_at":      day(i, k*5),
				"updated_at":      day(i, k*5+1),
			})
		}
	case ErrorTracking: // events
		for k := range 1 + i%2 {
			rows = append(rows, map[string]any{
				"event_id":   fmt.Sprintf("evt-%06d", i*100+k),
				"user_id":    uid,
				"user_email": e,
				"message":    pick([]string{"TypeError: player is null", "WebSocket closed", "Timeout loading slides"}, i*3+k),
				"browser":    pick([]string{"Firefox 124", "Chrome 123", "Safari 17.4", "Edge 123"}, i+k),
				"os":         pick([]string{"Windows 11", "macOS 14", "Ubuntu 22.04", "iOS 17"}, i*2+k),
				"ip_address": fmt.Sprintf("203.0.113.%d", i%250+1),
				"at":         day(i, k),
			})
		}
	case Captioning: // what the person said in webinars, transcribed
		for k := range 1 + i%2 {
			rows = append(rows, map[string]any{
				"caption_id": fmt.Sprintf("cap-%06d", i*100+k),
				"speaker":    e,
				"webinar":    pick([]string{"Quarterly product update", "Onboarding 101", "Ask us anything"}, i+k),
				"text":       pick([]string{"Can you share the slides afterwards?", "Thanks, that answers my question.", "Is there a recording?"}, i*2+k),
				"spoken_at":  day(i, k*7),
			})
		}
	}
	return rows
}

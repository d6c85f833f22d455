package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/httpapi"
)

//go:embed templates
var templateFS embed.FS

// pageTemplate is a page: the layout with the page's content.
type pageTemplate struct{ t *template.Template }

var funcs = template.FuncMap{
	"stateLabel": stateLabel,
	"stateClass": stateClass,
	"join":       strings.Join,
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
	"roles": func() []auth.Role { return auth.Roles() },
}

func parsePages() (map[string]*pageTemplate, error) {
	names, err := templateFS.ReadDir("templates")
	if err != nil {
		return nil, err
	}
	pages := map[string]*pageTemplate{}
	for _, n := range names {
		name := strings.TrimSuffix(n.Name(), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+n.Name())
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		pages[name] = &pageTemplate{t: t}
	}
	return pages, nil
}

// can says what the principal's role allows, as the API's routes do: the
// page shows only those actions (the server refuses the others anyway).
type can struct {
	Read, Decide, Submit, Admin bool
	// VerifyAtSubmit: only a dpo or an admin may file a request as
	// verified.
	VerifyAtSubmit bool
}

func canOf(p auth.Principal) can {
	return can{
		Read:           slices.Contains(httpapi.Roles.Readers, p.Role),
		Decide:         slices.Contains(httpapi.Roles.Deciders, p.Role),
		Submit:         slices.Contains(httpapi.Roles.Submitters, p.Role),
		Admin:          slices.Contains(httpapi.Roles.Admins, p.Role),
		VerifyAtSubmit: p.Role == auth.Admin || p.Role == auth.DPO,
	}
}

// page is what the layout shows around a page's content.
type page struct {
	Title   string
	Nav     string
	P       auth.Principal
	Can     can
	CSRF    string
	Flash   string
	Error   string
	Now     string
	Signed  bool
	Content any
}

// render writes a page with status.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, s *session, title string, content any) {
	c.renderPage(w, r, status, name, s, page{Title: title, Content: content})
}

func (c *Console) renderPage(w http.ResponseWriter, r *http.Request, status int, name string, s *session, pg page) {
	if s != nil {
		s.mu.Lock()
		pg.P, pg.CSRF, pg.Signed = s.p, s.csrf, true
		s.mu.Unlock()
		pg.Can = canOf(pg.P)
		if f := s.takeFlash(); f != "" && pg.Flash == "" {
			pg.Flash = f
		}
	}
	if pg.Nav == "" {
		pg.Nav = name
	}
	pg.Now = c.cfg.Life.Now().UTC().Format("2 Jan 2006 15:04 MST")
	c.execute(w, status, name, "layout.html", pg)
}

// fragment writes one template of a page alone (an htmx swap).
func (c *Console) fragment(w http.ResponseWriter, status int, name, tmpl string, data any) {
	c.execute(w, status, name, tmpl, data)
}

func (c *Console) execute(w http.ResponseWriter, status int, name, tmpl string, data any) {
	pt, ok := c.pages[name]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := pt.t.ExecuteTemplate(&buf, tmpl, data); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorPage struct {
	Status  int
	Message string
}

// fail shows an error in words, with status; nothing was changed.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	if r.Header.Get("HX-Request") != "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		w.Write([]byte(msg))
		return
	}
	c.renderPage(w, r, status, "error", s, page{Title: http.StatusText(status), Nav: "-", Content: errorPage{Status: status, Message: msg}})
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request, s *session) {
	c.fail(w, r, s, http.StatusNotFound, "There is no such page, or no such request for you.")
}

// internal answers a failure of the store or the lifecycle.
func (c *Console) internal(w http.ResponseWriter, r *http.Request, s *session, err error, what string) {
	c.log.Error("console: "+what, "err", err)
	c.fail(w, r, s, http.StatusInternalServerError, "Something went wrong ("+what+"); nothing was changed. Try again in a moment.")
}

var stateLabels = map[lifecycle.State]string{
	lifecycle.PendingVerification: "Identity to check", lifecycle.Open: "Open", lifecycle.Fulfilled: "Fulfilled",
	lifecycle.PartiallyRetained: "Partially retained", lifecycle.Failed: "Failed", lifecycle.Denied: "Denied", lifecycle.Expired: "Expired",
}

func stateLabel(s lifecycle.State) string {
	if l, ok := stateLabels[s]; ok {
		return l
	}
	return string(s)
}

func stateClass(s lifecycle.State) string {
	switch s {
	case lifecycle.Fulfilled:
		return "ok"
	case lifecycle.PartiallyRetained:
		return "kept"
	case lifecycle.Failed:
		return "bad"
	case lifecycle.Denied, lifecycle.Expired:
		return "muted"
	case lifecycle.PendingVerification:
		return "wait"
	}
	return "open"
}

// zone is the time zone a tenant's dates are shown in: its deadline
// policy's, else UTC.
func (c *Console) zone(tenant string) *time.Location {
	if c.cfg.Deadlines == nil || tenant == "" || tenant == auth.AnyTenant {
		return time.UTC
	}
	if pol, err := c.cfg.Deadlines.Spec(tenant).Policy(); err == nil && pol.Location != nil {
		return pol.Location
	}
	return time.UTC
}

func when(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(loc).Format("2 Jan 2006 15:04 MST")
}

func day(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(loc).Format("2 Jan 2006")
}

// ago says how long ago t was, roughly.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + span(-d)
	case d < time.Minute:
		return "just now"
	}
	return span(d) + " ago"
}

func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// timeLeft is a deadline's time left in words and its colour: bad when
// overdue, warn under 7 days.
type timeLeft struct {
	Text, Class string
}

func leftOf(now, dl time.Time, ended bool) timeLeft {
	if ended {
		return timeLeft{Text: "answered", Class: "muted"}
	}
	d := dl.Sub(now)
	switch {
	case d < 0:
		days := int(-d.Hours() / 24)
		if days == 0 {
			return timeLeft{Text: "overdue", Class: "bad"}
		}
		return timeLeft{Text: fmt.Sprintf("overdue by %d d", days), Class: "bad"}
	case d < 24*time.Hour:
		return timeLeft{Text: fmt.Sprintf("%d h", int(d.Hours())), Class: "warn"}
	case d < 7*24*time.Hour:
		return timeLeft{Text: fmt.Sprintf("%d d", int(d.Hours()/24)), Class: "warn"}
	}
	return timeLeft{Text: fmt.Sprintf("%d d", int(d.Hours()/24)), Class: "okay"}
}

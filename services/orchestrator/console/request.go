package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/httpapi"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

type taskRow struct {
	System, State, Outcome, Answered, Counts, Detail, Next, RetainUntil string
	Attempts                                                            int
	Class                                                               string
}

type event struct {
	At, What, Who, Detail, Class string
}

type requestPage struct {
	ID, Tenant, Type                                     string
	State                                                lifecycle.State
	Ended                                                bool
	Received, Deadline, OriginalDeadline, Completed      string
	ExtendedAt, ExtensionReason, Answered, Zone, Created string
	Left                                                 timeLeft
	SubjectHash, Source, SubmittedBy                     string
	Tasks                                                []taskRow
	Timeline                                             []event
	// Live: the page refreshes its live part until the request ends.
	Live    bool
	LiveURL string
	Version string
	OOB     bool
	Can     can
	CSRF    string
	Actions actions
	Error   string
	// ExportURL is a download link just made, shown once.
	ExportURL, ExportExpires string
	Methods, Grounds         []string
	Form                     map[string]string
}

type actions struct {
	Verify, Deny, Extend bool
	Dead                 []string // systems whose task failed or ran out of attempts
	Certificate, Export  bool
	Any                  bool
}

// visibleRequest reads the request of the path for s, writing a 404 for
// one of another tenant (or, for intake, not its own) exactly as for a
// missing one.
func (c *Console) visibleRequest(w http.ResponseWriter, r *http.Request, s *session) (*store.Request, []*store.Task, bool) {
	req, tasks, err := c.cfg.Store.Get(r.Context(), r.PathValue("id"))
	if err == nil && !httpapi.Visible(s.p, req) {
		err = store.ErrNotFound
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.fail(w, r, s, http.StatusNotFound, "There is no such request, or it is not yours to see.")
		return nil, nil, false
	case err != nil:
		c.internal(w, r, s, err, "read the request")
		return nil, nil, false
	}
	return req, tasks, true
}

var taskStateWords = map[lifecycle.TaskState]string{
	lifecycle.TaskPending: "Waiting for the identity check", lifecycle.TaskPublished: "Sent, waiting for an answer",
	lifecycle.TaskRetrying: "Retrying", lifecycle.TaskAnswered: "Answered", lifecycle.TaskDeadLetter: "Gave up (dead letter)",
	lifecycle.TaskDeferred: "Deferred by law",
}

// view builds a request's page for s.
func (c *Console) view(r *http.Request, s *session, req *store.Request, tasks []*store.Task) (requestPage, error) {
	now, loc := c.cfg.Life.Now(), c.requestZone(req)
	pg := requestPage{ID: req.ID, Tenant: req.Tenant, Type: string(req.Type), State: req.State, Ended: req.State.Ended(),
		Received: when(req.ReceivedAt, loc), Deadline: when(req.Deadline, loc), OriginalDeadline: when(req.OriginalDeadline, loc),
		Completed: when(req.CompletedAt, loc), ExtendedAt: when(req.ExtendedAt, loc), ExtensionReason: req.ExtensionReason,
		Answered: when(req.AnsweredAt, loc), Created: when(req.CreatedAt, loc), Zone: loc.String(),
		Left: leftOf(now, req.Deadline, req.State.Ended()), SubjectHash: req.SubjectHash, Source: req.Source, SubmittedBy: req.SubmittedBy,
		Methods: lifecycle.VerificationMethods, Grounds: lifecycle.DenialGrounds, Form: map[string]string{}}
	s.mu.Lock()
	pg.Can, pg.CSRF = canOf(s.p), s.csrf
	s.mu.Unlock()
	counts := map[string]string{}
	var dead []string
	for _, k := range tasks {
		row := taskRow{System: k.System, State: taskStateWords[k.State], Outcome: k.Outcome.Words(), Attempts: k.Attempts,
			Answered: when(k.AnsweredAt, loc), Detail: k.Detail, RetainUntil: day(k.RetainUntil, loc)}
		if row.State == "" {
			row.State = string(k.State)
		}
		if k.State.Waiting() && !k.NextAttemptAt.IsZero() {
			row.Next = when(k.NextAttemptAt, loc)
		}
		switch {
		case k.Outcome.Done():
			row.Class = "ok"
		case k.Outcome == lifecycle.Retained:
			row.Class = "kept"
		case k.State == lifecycle.TaskDeadLetter || k.Outcome == lifecycle.OutcomeFailed || k.Outcome == lifecycle.DeadLetter:
			row.Class = "bad"
		default:
			row.Class = "wait"
		}
		if len(k.Counts) > 0 {
			keys := make([]string, 0, len(k.Counts))
			for cat := range k.Counts {
				keys = append(keys, cat)
			}
			sort.Strings(keys)
			parts := make([]string, 0, len(keys))
			for _, cat := range keys {
				parts = append(parts, fmt.Sprintf("%s: %d", cat, k.Counts[cat]))
			}
			row.Counts = strings.Join(parts, ", ")
			counts[k.System] = row.Counts
		}
		if k.State == lifecycle.TaskDeadLetter || (k.State == lifecycle.TaskAnswered && k.Outcome == lifecycle.OutcomeFailed) {
			dead = append(dead, k.System)
		}
		pg.Tasks = append(pg.Tasks, row)
	}
	var recs []store.LogRecord
	err := c.cfg.Store.Tx(r.Context(), func(tx store.Tx) error {
		var err error
		recs, err = tx.RequestLog(r.Context(), req.ID)
		return err
	})
	if err != nil {
		return pg, err
	}
	for _, rec := range recs {
		e, err := proof.DecodeEntry(rec.Data)
		if err != nil {
			pg.Timeline = append(pg.Timeline, event{What: "An entry that could not be read", Class: "bad", Detail: fmt.Sprintf("log index %d", rec.Index)})
			continue
		}
		pg.Timeline = append(pg.Timeline, describe(e, req, counts, loc))
	}
	cert := false
	if pg.Ended {
		if _, err := c.cfg.Life.Certificate(r.Context(), req.ID); err == nil {
			cert = true
			pg.Timeline = append(pg.Timeline, event{At: when(req.CompletedAt, loc), What: "Certificate of fulfilment issued", Class: "ok",
				Detail: "signed by the orchestrator; verifiable offline"})
		}
	}
	// Actions the role allows in this state: the server checks them again.
	a := actions{}
	if pg.Can.Decide {
		a.Verify = req.State == lifecycle.PendingVerification
		a.Deny = a.Verify
		a.Extend = !pg.Ended && req.ExtendedAt.IsZero() && now.Before(req.Deadline)
		a.Dead = dead
		if req.Type == lifecycle.Export && !req.CompletedAt.IsZero() {
			for _, k := range tasks {
				a.Export = a.Export || len(k.ExportKey) > 0
			}
		}
	}
	a.Certificate = pg.Can.Read && cert
	a.Any = a.Verify || a.Deny || a.Extend || len(a.Dead) > 0 || a.Certificate || a.Export
	pg.Actions = a
	pg.Version = string(req.State) + "." + strings.Join(dead, ",") + "." + fmt.Sprint(!req.ExtendedAt.IsZero(), cert, a.Export)
	pg.Live = !pg.Ended
	pg.LiveURL = Prefix + "requests/" + url.PathEscape(req.ID) + "/live?v=" + url.QueryEscape(pg.Version)
	return pg, nil
}

func who(a *proof.Actor) string {
	if a == nil {
		return ""
	}
	name := a.Name
	if name == "" {
		name = a.ID
	}
	if a.Role != "" {
		return name + " (" + a.Role + ")"
	}
	return name
}

// describe says an entry of the log in words.
func describe(e proof.Entry, req *store.Request, counts map[string]string, loc *time.Location) event {
	ev := event{At: e.At.In(loc).Format("2 Jan 2006 15:04:05 MST"), Who: who(e.Actor)}
	switch e.Event {
	case proof.EventCreated:
		ev.What = "Request received"
		parts := []string{}
		if e.ReceivedAt != nil {
			parts = append(parts, "received "+when(*e.ReceivedAt, loc))
		}
		if e.Deadline != nil {
			parts = append(parts, "due "+when(*e.Deadline, loc))
		}
		if e.Detail != "" {
			parts = append(parts, strings.ReplaceAll(e.Detail, "source=", "through "))
		}
		ev.Detail = strings.Join(parts, "; ")
	case proof.EventVerified:
		ev.What, ev.Class = "Identity verified", "ok"
		if e.Method != "" {
			ev.Detail = "method: " + strings.ReplaceAll(e.Method, "_", " ")
			if req.VerificationNote != "" {
				ev.Detail += "; note: " + req.VerificationNote
			}
		} else {
			ev.Detail = "by the account's own deletion"
		}
	case proof.EventTaskPublished:
		ev.What = fmt.Sprintf("Task sent to %s", e.System)
		ev.Detail = fmt.Sprintf("attempt %d", e.Attempt)
	case proof.EventTaskFailed:
		ev.What, ev.Class = fmt.Sprintf("%s failed", e.System), "bad"
		ev.Detail = fmt.Sprintf("attempt %d", e.Attempt)
		if e.Detail != "" {
			ev.Detail += ": " + e.Detail
		}
	case proof.EventReceiptAccepted:
		o := e.Outcome.Words()
		if o == "" {
			o = string(e.Outcome)
		}
		ev.What = fmt.Sprintf("%s answered: %s", e.System, o)
		ev.Class = "ok"
		if e.Outcome == lifecycle.OutcomeFailed {
			ev.Class = "bad"
		}
		parts := []string{"signed receipt"}
		if c := counts[e.System]; c != "" {
			parts = append(parts, c)
		}
		if e.Detail != "" {
			parts = append(parts, e.Detail)
		}
		ev.Detail = strings.Join(parts, "; ")
	case proof.EventDeadLetter:
		ev.What, ev.Class = fmt.Sprintf("%s gave up (dead letter)", e.System), "bad"
		ev.Detail = fmt.Sprintf("after %d attempts", e.Attempt)
		if e.Detail != "" {
			ev.Detail += ": " + e.Detail
		}
	case proof.EventExtended:
		ev.What, ev.Class = "Deadline extended by two months (Art. 12(3))", "warn"
		parts := []string{}
		if e.OriginalDeadline != nil {
			parts = append(parts, "from "+when(*e.OriginalDeadline, loc))
		}
		if e.Deadline != nil {
			parts = append(parts, "to "+when(*e.Deadline, loc))
		}
		if req.ExtensionReason != "" {
			parts = append(parts, "reason: "+req.ExtensionReason)
		}
		ev.Detail = strings.Join(parts, "; ")
	case proof.EventNoticeDelivered:
		ev.What, ev.Class = "Person told of the "+e.Notice, "ok"
		ev.Detail = "delivered through " + e.Channel
	case proof.EventErasureDeferred:
		ev.What, ev.Class = fmt.Sprintf("%s keeps data by law", e.System), "kept"
		if e.RetainUntil != nil {
			ev.Detail = "erased on " + day(*e.RetainUntil, loc)
		}
	case proof.EventTaskRetried:
		ev.What = fmt.Sprintf("%s retried", e.System)
		ev.Detail = "a new round of attempts"
	case proof.EventTaskResolved:
		ev.What, ev.Class = fmt.Sprintf("%s resolved by hand", e.System), "ok"
	case proof.EventExportAssembled:
		ev.What, ev.Class = "Export assembled", "ok"
		ev.Detail = "manifest sha256 " + shortHash(e.ManifestSHA256)
	case proof.EventExportDeleted:
		ev.What = "Export deleted"
		ev.Detail = e.Detail
	case proof.EventFulfilled:
		ev.What, ev.Class = "Fulfilled", "ok"
	case proof.EventPartiallyRetained:
		ev.What, ev.Class = "Answered; some data kept by law", "kept"
	case proof.EventFailed:
		ev.What, ev.Class = "Ended failed", "bad"
		ev.Detail = e.Detail
	case proof.EventDenied:
		ev.What, ev.Class = "Refused", "muted"
		ev.Detail = "ground: " + strings.ReplaceAll(e.Ground, "_", " ")
		if req.DenialNote != "" {
			ev.Detail += "; note: " + req.DenialNote
		}
	case proof.EventExpired:
		ev.What, ev.Class = "Expired: the identity was never checked", "muted"
		ev.Detail = e.Detail
	default:
		ev.What = e.Event
		ev.Detail = e.Detail
	}
	return ev
}

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16] + "…"
	}
	return h
}

func (c *Console) handleRequest(w http.ResponseWriter, r *http.Request, s *session) {
	req, tasks, ok := c.visibleRequest(w, r, s)
	if !ok {
		return
	}
	c.showRequest(w, r, s, req, tasks, http.StatusOK, nil)
}

// showRequest renders a request's page; edit, if set, adds an action's
// error or result.
func (c *Console) showRequest(w http.ResponseWriter, r *http.Request, s *session, req *store.Request, tasks []*store.Task, status int, edit func(*requestPage)) {
	pg, err := c.view(r, s, req, tasks)
	if err != nil {
		c.internal(w, r, s, err, "read the request's log")
		return
	}
	if edit != nil {
		edit(&pg)
	}
	c.render(w, r, status, "request", s, "Request "+req.ID, pg)
}

// handleLive serves the live part of a request's page, for htmx to swap
// every 2 s; the actions too, out of band, when what they offer changed.
func (c *Console) handleLive(w http.ResponseWriter, r *http.Request, s *session) {
	req, tasks, ok := c.visibleRequest(w, r, s)
	if !ok {
		return
	}
	pg, err := c.view(r, s, req, tasks)
	if err != nil {
		c.internal(w, r, s, err, "read the request's log")
		return
	}
	pg.OOB = r.URL.Query().Get("v") != pg.Version
	c.fragment(w, http.StatusOK, "request", "live", pg)
}

// words turns a refusal of the lifecycle into a status and a sentence,
// as the API says it.
func words(err error) (int, string) {
	trim := func(sentinel error) string {
		return sentence(strings.TrimSuffix(err.Error(), ": "+sentinel.Error()))
	}
	switch {
	case errors.Is(err, engine.ErrBadDecision):
		return http.StatusBadRequest, trim(engine.ErrBadDecision)
	case errors.Is(err, engine.ErrBadReason):
		return http.StatusBadRequest, trim(engine.ErrBadReason)
	case errors.Is(err, engine.ErrBadNote):
		return http.StatusBadRequest, trim(engine.ErrBadNote)
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "There is no such request, or no such system in it."
	case errors.Is(err, engine.ErrConflict):
		return http.StatusConflict, trim(engine.ErrConflict)
	case store.IsUnavailable(err):
		return http.StatusServiceUnavailable, "The store cannot take this now (full or unreachable); nothing was changed: try again later."
	}
	return 0, ""
}

func sentence(s string) string {
	if s == "" {
		return s
	}
	rs := []rune(s)
	rs[0] = unicode.ToUpper(rs[0])
	s = string(rs)
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// act runs an action on the path's request and shows its result: the
// request's page again, with the refusal in words (nothing changed), or
// a redirect to it with what was done.
func (c *Console) act(w http.ResponseWriter, r *http.Request, s *session, what string, form map[string]string, do func(req *store.Request) (string, error)) {
	req, _, ok := c.visibleRequest(w, r, s)
	if !ok {
		return
	}
	done, err := do(req)
	if err != nil {
		status, msg := words(err)
		if status == 0 {
			c.internal(w, r, s, err, what)
			return
		}
		req, tasks, ok := c.visibleRequest(w, r, s)
		if !ok {
			return
		}
		c.showRequest(w, r, s, req, tasks, status, func(pg *requestPage) {
			pg.Error = msg
			pg.Form = form
		})
		return
	}
	c.log.Info("console: "+what, "request_id", req.ID, "by", s.p.ID)
	s.setFlash(done)
	http.Redirect(w, r, Prefix+"requests/"+url.PathEscape(req.ID), http.StatusSeeOther)
}

func (c *Console) handleVerify(w http.ResponseWriter, r *http.Request, s *session) {
	method, note := r.PostFormValue("method"), r.PostFormValue("note")
	c.act(w, r, s, "verify", map[string]string{"method": method, "verify_note": note}, func(req *store.Request) (string, error) {
		_, err := c.cfg.Life.Verify(r.Context(), req.ID, engine.Decision{Actor: *httpapi.Actor(s.p), Method: method, Note: note})
		return "Identity verified: the tasks are on their way to every system.", err
	})
}

func (c *Console) handleDeny(w http.ResponseWriter, r *http.Request, s *session) {
	ground, note := r.PostFormValue("reason"), r.PostFormValue("note")
	c.act(w, r, s, "deny", map[string]string{"reason": ground, "deny_note": note}, func(req *store.Request) (string, error) {
		_, err := c.cfg.Life.Deny(r.Context(), req.ID, engine.Decision{Actor: *httpapi.Actor(s.p), Ground: ground, Note: note})
		return "Request refused; its certificate records the ground.", err
	})
}

func (c *Console) handleExtend(w http.ResponseWriter, r *http.Request, s *session) {
	reason := r.PostFormValue("reason")
	c.act(w, r, s, "extend", map[string]string{"extend_reason": reason}, func(req *store.Request) (string, error) {
		_, err := c.cfg.Life.Extend(r.Context(), req.ID, reason, httpapi.Actor(s.p))
		return "Deadline extended by two months; the person is told why.", err
	})
}

func (c *Console) handleRetry(w http.ResponseWriter, r *http.Request, s *session) {
	system := r.PathValue("system")
	c.act(w, r, s, "retry", nil, func(req *store.Request) (string, error) {
		_, err := c.cfg.Life.Retry(r.Context(), req.ID, system, *httpapi.Actor(s.p))
		return "Task of " + system + " sent again.", err
	})
}

func (c *Console) handleResolve(w http.ResponseWriter, r *http.Request, s *session) {
	system, note := r.PathValue("system"), r.PostFormValue("note")
	c.act(w, r, s, "resolve", map[string]string{"resolve_note_" + system: note}, func(req *store.Request) (string, error) {
		_, err := c.cfg.Life.Resolve(r.Context(), req.ID, system, *httpapi.Actor(s.p), note)
		return "Task of " + system + " recorded as resolved by hand.", err
	})
}

// handleExportLink makes a single-use download link for the person whose
// export it is, shown once.
func (c *Console) handleExportLink(w http.ResponseWriter, r *http.Request, s *session) {
	req, tasks, ok := c.visibleRequest(w, r, s)
	if !ok {
		return
	}
	held := slices.ContainsFunc(tasks, func(k *store.Task) bool { return len(k.ExportKey) > 0 })
	switch {
	case req.Type != lifecycle.Export:
		c.fail(w, r, s, http.StatusConflict, "Not an export request.")
		return
	case req.CompletedAt.IsZero():
		c.fail(w, r, s, http.StatusConflict, "The export is not complete yet.")
		return
	case !held:
		c.fail(w, r, s, http.StatusGone, "The export was collected or has expired, and is deleted: file a new request for a new copy.")
		return
	}
	secret, expires, err := c.cfg.Life.ExportLink(r.Context(), req.ID)
	if err != nil {
		c.internal(w, r, s, err, "make the link")
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	link := scheme + "://" + r.Host + "/v1/requests/" + url.PathEscape(req.ID) + "/export?link=" + url.QueryEscape(secret)
	c.log.Info("console: export link made", "request_id", req.ID, "by", s.p.ID)
	c.showRequest(w, r, s, req, tasks, http.StatusCreated, func(pg *requestPage) {
		pg.ExportURL, pg.ExportExpires = link, when(expires, c.requestZone(req))
	})
}

type certificatePage struct {
	C                *proof.Certificate
	Verified         bool
	Problem          string
	Received         string
	Deadline         string
	Completed        string
	OriginalDeadline string
	Systems          []certSystem
	ID               string
}

type certSystem struct {
	System, Outcome, Class, Details, Answered, KeyID string
}

// certificate reads the certificate of the request a page is for, or
// answers why there is none.
func (c *Console) certificate(w http.ResponseWriter, r *http.Request, s *session) (*store.Request, []byte, bool) {
	req, _, ok := c.visibleRequest(w, r, s)
	if !ok {
		return nil, nil, false
	}
	b, err := c.cfg.Life.Certificate(r.Context(), req.ID)
	if errors.Is(err, store.ErrNotFound) {
		c.fail(w, r, s, http.StatusConflict, "No certificate yet: it is issued when the request ends (and, with witnesses, once they have cosigned the log's checkpoint).")
		return nil, nil, false
	}
	if err != nil {
		c.internal(w, r, s, err, "read the certificate")
		return nil, nil, false
	}
	return req, b, true
}

func (c *Console) handleCertificate(w http.ResponseWriter, r *http.Request, s *session) {
	req, b, ok := c.certificate(w, r, s)
	if !ok {
		return
	}
	cert, err := proof.Verify(b, c.cfg.Life.Keys())
	pg := certificatePage{C: cert, Verified: err == nil, ID: req.ID}
	if err != nil {
		pg.Problem = err.Error()
	}
	loc := c.requestZone(req)
	if cert != nil {
		pg.Received, pg.Deadline, pg.Completed = when(cert.ReceivedAt, loc), when(cert.Deadline, loc), when(cert.CompletedAt, loc)
		if cert.Extension != nil {
			pg.OriginalDeadline = day(cert.Extension.OriginalDeadline, loc)
		}
		for _, sys := range cert.Systems {
			row := certSystem{System: sys.System, Outcome: sys.Outcome.Words(), KeyID: sys.KeyID}
			if sys.ConnectorTime != nil {
				row.Answered = day(*sys.ConnectorTime, loc)
			}
			switch {
			case sys.Outcome.Done():
				row.Class = "ok"
			case sys.Outcome == lifecycle.Retained:
				row.Class = "kept"
			default:
				row.Class = "bad"
			}
			var parts []string
			keys := make([]string, 0, len(sys.Counts))
			for k := range sys.Counts {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s: %d", k, sys.Counts[k]))
			}
			if sys.LegalBasis != "" {
				p := "kept under: " + sys.LegalBasis
				if sys.RetainUntil != nil {
					p += ", until " + day(*sys.RetainUntil, loc)
				}
				parts = append(parts, p)
			}
			if sys.Detail != "" {
				parts = append(parts, sys.Detail)
			}
			row.Details = strings.Join(parts, "; ")
			pg.Systems = append(pg.Systems, row)
		}
	}
	c.render(w, r, http.StatusOK, "certificate", s, "Certificate "+req.ID, pg)
}

// handleCertificateJSON serves the certificate's exact bytes, to verify
// offline with lethectl.
func (c *Console) handleCertificateJSON(w http.ResponseWriter, r *http.Request, s *session) {
	req, b, ok := c.certificate(w, r, s)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="certificate-`+req.ID+`.json"`)
	w.Write(append(b, '\n'))
}

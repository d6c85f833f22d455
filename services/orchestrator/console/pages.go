package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/services/orchestrator/auth"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/httpapi"
	"github.com/lethe-dev/lethe/services/orchestrator/metrics"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// scope narrows a query to what p may see: its tenant (every one for an
// admin), and for an intake principal what it submitted.
func scope(p auth.Principal, q *store.ListQuery) {
	if p.Tenant != auth.AnyTenant && p.Role != auth.Admin {
		q.Tenant = p.Tenant
	}
	if p.Role == auth.Intake {
		q.SubmittedBy = p.ID
	}
}

// active are the states of a request not yet ended.
var active = []lifecycle.State{lifecycle.PendingVerification, lifecycle.Open}

// listAll reads every page of q, up to max requests.
func (c *Console) listAll(ctx context.Context, q store.ListQuery, max int) ([]*store.Request, error) {
	var out []*store.Request
	q.Limit = 500
	for {
		page, next, err := c.cfg.Store.List(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if next == "" || len(out) >= max {
			return out, nil
		}
		q.After = next
	}
}

// bucketNames are the burn-down's buckets in words.
var bucketNames = map[string]string{"overdue": "Overdue", "lt_3d": "< 3 days", "lt_7d": "< 7 days", "lt_14d": "< 14 days", "later": "Later"}

type bar struct {
	Name, Label, Class, Href string
	Count                    int
	X, Y, W, H, Mid, CountY  int
}

type systemRow struct {
	System, LastAnswer, LastAnswerAgo, Oldest string
	Pending                                   int
	OldestClass                               string
}

type overviewPage struct {
	Scope       string
	Admin       bool
	Bars        []bar
	Open        int
	Failed      int
	DeadLetters int
	Systems     []systemRow
	Deferred    []bar
	Undelivered []struct {
		Channel string
		Count   int
	}
	Untold   string
	Earliest string
	Zone     string
}

// chart geometry of the burn-down (an SVG of the console's own, no script).
const (
	chartBase   = 190
	chartHeight = 150
	barWidth    = 84
	barGap      = 36
	chartLeft   = 24
)

func bars(buckets []metrics.Bucket, href func(name string) string) []bar {
	maxN := 1
	for _, b := range buckets {
		maxN = max(maxN, b.Count)
	}
	out := make([]bar, 0, len(buckets))
	for i, b := range buckets {
		h := b.Count * chartHeight / maxN
		if b.Count > 0 {
			h = max(h, 3)
		}
		x := chartLeft + i*(barWidth+barGap)
		class := "later"
		switch b.Name {
		case "overdue":
			class = "bad"
		case "lt_3d", "lt_7d":
			class = "warn"
		case "lt_30d":
			class = "warn"
		}
		label := bucketNames[b.Name]
		if label == "" {
			label = map[string]string{"lt_30d": "< 30 days"}[b.Name]
		}
		out = append(out, bar{Name: b.Name, Label: label, Class: class, Href: href(b.Name), Count: b.Count,
			X: x, Y: chartBase - h, W: barWidth, H: h, Mid: x + barWidth/2, CountY: chartBase - h - 8})
	}
	return out
}

func (c *Console) handleOverview(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	now := c.cfg.Life.Now()
	p := s.p
	loc := c.zone(p.Tenant)
	pg := overviewPage{Admin: p.Role == auth.Admin || p.Tenant == auth.AnyTenant, Zone: loc.String()}
	listHref := func(name string) string { return Prefix + "requests?state=active&window=" + name }
	var pending map[string]store.PendingTasks
	if pg.Admin {
		// An admin sees every tenant: the numbers of the metrics, read by
		// the same code.
		pg.Scope = "all tenants"
		pr, err := metrics.ReadPressure(ctx, c.cfg.Store, now)
		if err != nil {
			c.internal(w, r, s, err, "read the deadlines")
			return
		}
		pg.Bars, pg.Open = bars(metrics.OpenByTimeLeft(pr), listHref), pr.Open
		pg.Deferred = bars(metrics.DeferredByDue(pr), func(string) string { return Prefix + "requests?state=partially_retained" })
		for _, ch := range c.cfg.Channels {
			n := pr.UndeliveredBus
			if ch == proof.ChannelWebhook {
				n = pr.UndeliveredWebhook
			}
			pg.Undelivered = append(pg.Undelivered, struct {
				Channel string
				Count   int
			}{ch, n})
		}
		pg.Untold = when(pr.UntoldDeadline, loc)
		pg.Earliest = when(pr.EarliestOpen, loc)
		pending = pr.Pending
		st, err := c.cfg.Store.Stats(ctx)
		if err != nil {
			c.internal(w, r, s, err, "read the counts")
			return
		}
		for _, t := range lifecycle.Types() {
			pg.Failed += st.Requests[store.Kind{State: lifecycle.Failed, Type: t}]
		}
	} else {
		// A tenant's principal sees its tenant only: its requests not yet
		// ended, counted against the metrics' bounds by the same split.
		pg.Scope = "tenant " + p.Tenant
		q := store.ListQuery{States: active}
		scope(p, &q)
		open, err := c.listAll(ctx, q, 20000)
		if err != nil {
			c.internal(w, r, s, err, "list the requests")
			return
		}
		bounds, _ := metrics.Bounds(now)
		pr := store.Pressure{OpenBefore: make([]int, len(bounds)), Open: len(open), Pending: map[string]store.PendingTasks{}}
		for _, req := range open {
			for i, b := range bounds {
				if req.Deadline.Before(b) {
					pr.OpenBefore[i]++
				}
			}
			if pr.EarliestOpen.IsZero() || req.Deadline.Before(pr.EarliestOpen) {
				pr.EarliestOpen = req.Deadline
			}
			if req.State != lifecycle.Open {
				continue
			}
			_, tasks, err := c.cfg.Store.Get(ctx, req.ID)
			if err != nil {
				continue
			}
			for _, k := range tasks {
				if k.State == lifecycle.TaskPublished || k.State == lifecycle.TaskRetrying {
					pt := pr.Pending[k.System]
					pt.Count++
					if pt.EarliestDeadline.IsZero() || req.Deadline.Before(pt.EarliestDeadline) {
						pt.EarliestDeadline = req.Deadline
					}
					pr.Pending[k.System] = pt
				}
			}
		}
		pg.Bars, pg.Open, pg.Earliest = bars(metrics.OpenByTimeLeft(pr), listHref), pr.Open, when(pr.EarliestOpen, loc)
		pending = pr.Pending
		fq := store.ListQuery{State: lifecycle.Failed}
		scope(p, &fq)
		failed, err := c.listAll(ctx, fq, 20000)
		if err != nil {
			c.internal(w, r, s, err, "list the requests")
			return
		}
		pg.Failed = len(failed)
	}
	if canOf(p).Read {
		dq, _ := httpapi.DeadLetterScope(p, "", "")
		dead, err := c.cfg.Store.DeadLetters(ctx, dq)
		if err != nil {
			c.internal(w, r, s, err, "list the dead letters")
			return
		}
		pg.DeadLetters = len(dead)
	}
	for _, sys := range c.cfg.Systems {
		row := systemRow{System: sys, Pending: pending[sys].Count}
		if c.cfg.Metrics != nil {
			last := c.cfg.Metrics.LastAnswer(sys)
			row.LastAnswer, row.LastAnswerAgo = when(last, loc), ago(now, last)
		}
		if dl := pending[sys].EarliestDeadline; !dl.IsZero() {
			row.Oldest = when(dl, loc)
			row.OldestClass = leftOf(now, dl, false).Class
		}
		pg.Systems = append(pg.Systems, row)
	}
	c.render(w, r, http.StatusOK, "overview", s, "Overview", pg)
}

// windows are the deadline windows a list can be narrowed to: the
// burn-down's buckets.
var windows = []string{"overdue", "lt_3d", "lt_7d", "lt_14d", "later"}

// window returns the [from, before) deadlines of a window at now.
func window(name string, now time.Time) (from, before time.Time, ok bool) {
	b, _ := metrics.Bounds(now)
	switch name {
	case "overdue":
		return time.Time{}, b[0], true
	case "lt_3d":
		return b[0], b[1], true
	case "lt_7d":
		return b[1], b[2], true
	case "lt_14d":
		return b[2], b[3], true
	case "later":
		return b[3], time.Time{}, true
	}
	return time.Time{}, time.Time{}, false
}

type option struct {
	Value, Label string
	Selected     bool
}

type requestRow struct {
	ID, Tenant, Type, Received, Deadline string
	State                                lifecycle.State
	Left                                 timeLeft
	Answered, Systems                    int
}

type requestsPage struct {
	States, Types, Windows []option
	Tenant                 string
	ShowTenant             bool
	Subject                string
	Rows                   []requestRow
	Next, First            string
	Filtered               bool
	Lookup                 string
	Error                  string
}

var hexHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (c *Console) handleRequests(w http.ResponseWriter, r *http.Request, s *session) {
	c.requests(w, r, s, http.StatusOK, "")
}

func (c *Console) requests(w http.ResponseWriter, r *http.Request, s *session, status int, lookupErr string) {
	ctx, now, p := r.Context(), c.cfg.Life.Now(), s.p
	in := r.URL.Query()
	pg := requestsPage{ShowTenant: p.Tenant == auth.AnyTenant || p.Role == auth.Admin, Error: lookupErr}
	q := store.ListQuery{Limit: 25, After: in.Get("cursor")}
	bad := func(msg string) {
		c.fail(w, r, s, http.StatusBadRequest, msg)
	}
	state := in.Get("state")
	switch {
	case state == "active":
		q.States = active
	case state != "":
		if !lifecycle.State(state).Known() {
			bad("Unknown state.")
			return
		}
		q.State = lifecycle.State(state)
	}
	pg.States = append(pg.States, option{"", "Any state", state == ""}, option{"active", "Not yet ended", state == "active"})
	for _, st := range lifecycle.States() {
		pg.States = append(pg.States, option{string(st), stateLabel(st), state == string(st)})
	}
	typ := in.Get("type")
	if typ != "" && typ != string(lifecycle.Erasure) && typ != string(lifecycle.Export) && typ != string(lifecycle.Sweep) {
		bad("Unknown type: erasure, export or sweep.")
		return
	}
	q.Type = lifecycle.Type(typ)
	pg.Types = []option{{"", "Any type", typ == ""}, {"erasure", "Erasure", typ == "erasure"}, {"export", "Export", typ == "export"},
		{"sweep", "Retention run", typ == "sweep"}}
	win := in.Get("window")
	pg.Windows = append(pg.Windows, option{"", "Any deadline", win == ""})
	for _, n := range windows {
		pg.Windows = append(pg.Windows, option{n, bucketNames[n], win == n})
	}
	if win != "" {
		from, before, ok := window(win, now)
		if !ok {
			bad("Unknown deadline window.")
			return
		}
		q.DeadlineFrom, q.DeadlineBefore = from, before
	}
	if t := in.Get("tenant"); t != "" && pg.ShowTenant {
		if !engine.ValidTenant(t) {
			bad(engine.ErrTenantFormat.Error())
			return
		}
		q.Tenant, pg.Tenant = t, t
	}
	if h := in.Get("subject"); h != "" {
		if !hexHash.MatchString(h) {
			bad("The person's keyed hash is 64 hexadecimal digits.")
			return
		}
		q.SubjectHash, pg.Subject = h, h
	}
	pg.Filtered = state != "" || typ != "" || win != "" || pg.Tenant != "" || pg.Subject != ""
	scope(p, &q)
	reqs, next, err := c.cfg.Store.List(ctx, q)
	if errors.Is(err, store.ErrBadCursor) {
		bad("This page link is not valid any more: start from the first page.")
		return
	}
	if err != nil {
		c.internal(w, r, s, err, "list the requests")
		return
	}
	for _, req := range reqs {
		loc := c.requestZone(req)
		row := requestRow{ID: req.ID, Tenant: req.Tenant, Type: string(req.Type), State: req.State, Received: when(req.ReceivedAt, loc),
			Deadline: when(req.Deadline, loc), Left: leftOf(now, req.Deadline, req.State.Ended())}
		if _, tasks, err := c.cfg.Store.Get(ctx, req.ID); err == nil {
			row.Systems = len(tasks)
			for _, k := range tasks {
				if k.State == lifecycle.TaskAnswered {
					row.Answered++
				}
			}
		}
		pg.Rows = append(pg.Rows, row)
	}
	if next != "" {
		v := url.Values{}
		for k, vs := range in {
			if k != "cursor" {
				v[k] = vs
			}
		}
		v.Set("cursor", next)
		pg.Next = Prefix + "requests?" + v.Encode()
	}
	if q.After != "" {
		v := url.Values{}
		for k, vs := range in {
			if k != "cursor" {
				v[k] = vs
			}
		}
		pg.First = Prefix + "requests?" + v.Encode()
	}
	c.render(w, r, status, "requests", s, "Requests", pg)
}

// requestZone is the zone a request's dates are shown in: its deadline
// policy's, else its tenant's.
func (c *Console) requestZone(req *store.Request) *time.Location {
	if spec, pol, err := engine.RequestPolicy(req); err == nil && spec != nil && pol.Location != nil {
		return pol.Location
	}
	return c.zone(req.Tenant)
}

// subjectHash is the keyed hash the engine keeps of a person filed by
// email (engine.Submit: pseudonym.Hash of "email:" and the normalized
// address); no index of addresses in clear exists to look one up.
func subjectHash(key []byte, email string) string {
	return pseudonym.Hash(key, "email:"+pseudonym.Normalize(email))
}

// handleLookup finds a request by its id, or a person's requests by their
// email: a POST, so that the address is in no URL, history or log; the
// list it leads to names the keyed hash only.
func (c *Console) handleLookup(w http.ResponseWriter, r *http.Request, s *session) {
	q := strings.TrimSpace(r.PostFormValue("q"))
	switch {
	case strings.HasPrefix(q, "req_") && len(q) < 64:
		http.Redirect(w, r, Prefix+"requests/"+url.PathEscape(q), http.StatusSeeOther)
	case strings.Contains(q, "@"):
		if err := engine.Validate(engine.NewRequest{Type: lifecycle.Erasure, Tenant: "x", Email: q}); err != nil {
			c.requests(w, r, s, http.StatusBadRequest, "That is not a valid email address.")
			return
		}
		http.Redirect(w, r, Prefix+"requests?subject="+subjectHash(c.cfg.HashKey, q), http.StatusSeeOther)
	default:
		c.requests(w, r, s, http.StatusBadRequest, "Type a request id (req_…) or the person's email address.")
	}
}

package httpapi

import (
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/engine"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// handleKeys serves the keys file an auditor keeps to verify certificates
// offline: the orchestrator's key and every registered connector key.
func (a *API) handleKeys(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.life.Keys())
}

// certificate returns the stored certificate of an ended request, writing
// the error response itself when there is none.
func (a *API) certificate(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if _, _, ok := a.request(w, r); !ok {
		return nil, false
	}
	cert, err := a.life.Certificate(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusConflict, "no certificate yet: it is issued when the request ends (and, with witnesses, once they have cosigned the log's checkpoint)")
		return nil, false
	case err != nil:
		a.internal(w, err, "could not read the certificate", "certificate")
		return nil, false
	}
	return cert, true
}

// handleCertificate serves the certificate's exact bytes: a verifier
// requires them byte for byte.
func (a *API) handleCertificate(w http.ResponseWriter, r *http.Request) {
	cert, ok := a.certificate(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="certificate-`+r.PathValue("id")+`.json"`)
	w.Write(append(cert, '\n'))
}

func (a *API) handleCertificateHTML(w http.ResponseWriter, r *http.Request) {
	cert, ok := a.certificate(w, r)
	if !ok {
		return
	}
	c, err := proof.Verify(cert, a.life.Keys())
	page := certificatePage{C: c, Verified: err == nil}
	if err != nil {
		page.Problem = err.Error()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := certificateTemplate.Execute(w, page); err != nil {
		a.log.Error("certificate page", "err", err)
	}
}

type certificatePage struct {
	C        *proof.Certificate
	Verified bool
	Problem  string
}

// loc is the zone the request's days are counted in: its tenant's.
func (p certificatePage) loc() *time.Location {
	if p.C.DeadlinePolicy != nil {
		if pol, err := p.C.DeadlinePolicy.Policy(); err == nil && pol.Location != nil {
			return pol.Location
		}
	}
	return time.UTC
}

// Date shows a time in the tenant's zone; Day shows its date there.
func (p certificatePage) Date(t time.Time) string {
	return t.In(p.loc()).Format("2 January 2006, 15:04 MST")
}
func (p certificatePage) Day(t time.Time) string { return t.In(p.loc()).Format("2 January 2006") }

var certificateTemplate = template.Must(template.New("certificate").Funcs(template.FuncMap{
	"join": func(s []string) string { return strings.Join(s, ", ") },
	"class": func(o lifecycle.Outcome) string {
		switch {
		case o.Done():
			return "done"
		case o == lifecycle.Retained:
			return "kept"
		}
		return "failed"
	},
	"label": lifecycle.Outcome.Words,
	// erasedOrKept: a second look after the effect says what is left.
	"erasedOrKept":      func(o lifecycle.Outcome) bool { return o == lifecycle.Erased || o == lifecycle.Retained },
	"partiallyRetained": func(s lifecycle.State) bool { return s == lifecycle.PartiallyRetained },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Certificate of fulfilment {{.C.RequestID}}</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h1{font-size:1.6rem;margin-bottom:.2rem} .sub{color:#5b6475;margin-top:0}
.verdict{padding:.8rem 1rem;border-radius:.4rem;font-weight:600}
.ok{background:#e3f6e8;color:#135e2b} .bad{background:#fde4e1;color:#8a1c0f}
dl{display:grid;grid-template-columns:14rem 1fr;gap:.3rem 1rem} dt{color:#5b6475}
table{border-collapse:collapse;width:100%;margin-top:1rem} th,td{text-align:left;padding:.5rem;border-bottom:1px solid #e2e5ea;vertical-align:top}
td.outcome{font-weight:600;border-radius:.3rem} .done{background:#e3f6e8;color:#135e2b} .kept{background:#fff1d6;color:#7a4b00} .failed{background:#fde4e1;color:#8a1c0f}
code{font-size:.85em;word-break:break-all} footer{margin-top:2rem;color:#5b6475;font-size:.9rem}
</style></head><body>
<h1>Certificate of fulfilment</h1>
<p class="sub">Data-subject request <code>{{.C.RequestID}}</code> ({{.C.Type}}), tenant <b>{{.C.Tenant}}</b></p>
{{if .Verified}}<p class="verdict ok">Verified: every signature and proof checks out{{if .C.DeadlineMet}}, and the legal deadline was met{{else}}, but the legal deadline was missed{{end}}.</p>
{{else}}<p class="verdict bad">Not verified: {{.Problem}}</p>{{end}}
<dl>
<dt>Request received</dt><dd>{{$.Date .C.ReceivedAt}}</dd>
<dt>Legal deadline</dt><dd>{{$.Date .C.Deadline}}{{with .C.Extension}} (extended from {{$.Day .OriginalDeadline}}){{end}}</dd>
{{with .C.DeadlinePolicy}}<dt>Counted by</dt><dd>days of {{.TimeZone}}{{if .RollToWorkingDay}}, a deadline on a weekend or public holiday moving to the next working day{{end}}</dd>{{end}}
{{with .C.Extension}}<dt>Extended</dt><dd>{{$.Date .At}}, because: {{.Reason}}</dd>
<dt>Person told of it</dt><dd>{{if .NoticeDeliveredAt}}{{$.Date .NoticeDeliveredAt}} ({{join .NoticeChannels}}){{if .NoticeDeliveredAt.After .OriginalDeadline}}: <b>after the original deadline, so the extension has no effect</b>{{end}}{{else}}<b>Not yet</b>: until the person is told, the original deadline stands{{end}}</dd>{{end}}
{{with .C.Verification}}<dt>Identity checked</dt><dd>{{$.Date .At}}, by {{.Actor.Name}} ({{.Actor.Role}}, {{.Actor.Kind}} <code>{{.Actor.ID}}</code>): {{.Method}}{{with .Note}}. {{.}}{{end}}</dd>{{end}}
{{with .C.Denial}}<dt>Refused</dt><dd>{{$.Date .At}}, by {{.Actor.Name}} ({{.Actor.Role}}, {{.Actor.Kind}} <code>{{.Actor.ID}}</code>): {{.Ground}}{{with .Note}}. {{.}}{{end}}</dd>{{end}}
{{with .C.AnsweredAt}}<dt>Answered</dt><dd>{{$.Date .}} (some data kept by law until a later date)</dd>{{end}}
<dt>{{if partiallyRetained .C.State}}Answered, data kept by law{{else}}Completed{{end}}</dt><dd>{{$.Date .C.CompletedAt}}</dd>
<dt>Deadline met</dt><dd>{{if .C.DeadlineMet}}Yes{{else}}<b>No</b>{{end}}</dd>
<dt>Outcome</dt><dd>{{.C.State}}</dd>
<dt>Person (keyed hash)</dt><dd><code>{{.C.SubjectHash}}</code></dd>
</dl>
<table><thead><tr><th>System</th><th>Result</th><th>Details</th><th>Answered</th></tr></thead><tbody>
{{range .C.Systems}}<tr><td>{{.System}}</td><td class="outcome {{class .Outcome}}">{{label .Outcome}}</td><td>
{{if .Counts}}{{range $k, $v := .Counts}}{{$k}}: {{$v}}<br>{{end}}{{end}}
{{if .LegalBasis}}Kept under: {{.LegalBasis}}{{if .RetainUntil}}, until {{$.Day .RetainUntil}}, then erased{{end}}<br>{{end}}
{{if erasedOrKept .Outcome}}Records found on a second look: {{.Remaining}}<br>{{end}}
{{if .Detail}}{{.Detail}}{{end}}
</td><td>{{with .ConnectorTime}}{{$.Day .}}{{end}}{{if .KeyID}}<br><code>{{.KeyID}}</code>{{end}}</td></tr>
{{end}}</tbody></table>
<footer>
<p>Each system's answer is signed with its own key; the request's {{len .C.Log.Entries}} events are in a public, append-only log
of {{.C.SignedTreeHead.Size}} entries (root <code>{{.C.SignedTreeHead.Root}}</code>), and the certificate is signed by key <code>{{.C.KeyID}}</code>.</p>
<p>Check it yourself, offline: <code>lethectl keys export &gt; keys.json</code>, then
<code>lethectl verify certificate-{{.C.RequestID}}.json --keys keys.json</code>.</p>
</footer></body></html>
`))

// handleTreeHead signs the log's current size and root.
func (a *API) handleTreeHead(w http.ResponseWriter, r *http.Request) {
	th, err := a.life.TreeHead(r.Context())
	if err != nil {
		a.internal(w, err, "could not read the log", "tree head")
		return
	}
	writeJSON(w, http.StatusOK, th)
}

// handleConsistency proves that the log of size new extends the log of
// size old.
func (a *API) handleConsistency(w http.ResponseWriter, r *http.Request) {
	oldSize, err1 := strconv.ParseInt(r.URL.Query().Get("old"), 10, 64)
	newSize, err2 := strconv.ParseInt(r.URL.Query().Get("new"), 10, 64)
	if err1 != nil || err2 != nil || oldSize < 1 || oldSize > newSize {
		// A consistency proof is between two trees that hold entries:
		// every log extends the empty one, which has no root to prove.
		writeError(w, http.StatusBadRequest, "old and new must be log sizes with 1 <= old <= new")
		return
	}
	p, err := a.life.Consistency(r.Context(), oldSize, newSize)
	switch {
	case errors.Is(err, engine.ErrBadRange):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		a.internal(w, err, "could not read the log", "consistency proof")
	default:
		if p == nil {
			p = tlog.TreeProof{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"old": oldSize, "new": newSize, "proof": p})
	}
}

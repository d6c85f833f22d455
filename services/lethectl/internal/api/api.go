// Package api is a small client for the HTTP APIs lethectl talks to: the
// orchestrator's request API (with its proof endpoints: keys, certificates,
// the transparency log) and the demo accounts system's admin API.
//
// It speaks plain net/http and encoding/json. Every call takes a context
// first. A client made with a token sends it as a bearer token on every
// call; every state-changing call (POST, DELETE) is sent as
// application/json with a JSON body, {} when there is nothing to say. A
// reply with a 4xx or 5xx status is returned as an [*Error] carrying the
// server's own message, so callers can show it as is.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
)

// Error is a reply with a 4xx or 5xx status. Message is the server's "error"
// field, or the status text when the body did not carry one.
type Error struct {
	StatusCode int
	Message    string
	// RetryAfter is how long the server asked the caller to wait (its
	// Retry-After header, on a 429 or a 503); zero when it did not say.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.StatusCode)
}

// IsStatus reports whether err is an [*Error] with the given status code.
func IsStatus(err error, code int) bool {
	var apiErr *Error
	return errors.As(err, &apiErr) && apiErr.StatusCode == code
}

// Time is a timestamp in a reply. It accepts RFC 3339, a bare date
// (2006-01-02, as a retain-until date may be), an empty string and null; the
// last two, and Go's zero time, leave it zero so "not set" reads as IsZero.
type Time struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		t.Time = time.Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time: %w", err)
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v
			return nil
		}
	}
	return fmt.Errorf("time: cannot parse %q", s)
}

// MarshalJSON implements json.Marshaler; a zero time is null.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(t.Time.Format(time.RFC3339Nano))
}

// transport is what both clients share: a base URL, an optional bearer
// token and the JSON request/response plumbing. The token is only ever put
// in the Authorization header: no error, URL or log line holds it.
type transport struct {
	base  string
	token string
	http  *http.Client
}

func newTransport(baseURL, token string, hc *http.Client) transport {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return transport{base: strings.TrimRight(baseURL, "/"), token: token, http: hc}
}

// do sends a request and returns the response once its status is known to
// be a success; the caller closes the body. in, when not nil, is sent as
// JSON.
func (t transport) do(ctx context.Context, method, path string, in any) (*http.Response, error) {
	return t.send(ctx, method, path, "application/json", in)
}

// send is do with the media type to ask for.
func (t transport) send(ctx context.Context, method, path, accept string, in any) (*http.Response, error) {
	var body io.Reader
	switch {
	case in != nil:
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	case changesState(method):
		// The orchestrator takes a state-changing call only as JSON (a
		// browser form cannot send it): an empty object says "nothing".
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	resp, err := t.http.Do(req)
	if err != nil {
		// url.Error repeats method and URL; keep only the cause. The URL
		// holds ids and filters, never personal data, so it may be shown.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("%s %s%s: %w", method, t.base, path, err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// changesState reports whether a call with method may change something on
// the server, so it must be sent as JSON.
func changesState(method string) bool {
	return method != http.MethodGet && method != http.MethodHead
}

// call sends a request and decodes a JSON reply into out. It returns the raw
// body too, for callers that print it as is (--json).
func (t transport) call(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	resp, err := t.do(ctx, method, path, in)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read reply: %w", method, path, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: decode reply: %w", method, path, err)
		}
	}
	return raw, nil
}

// download streams a successful reply's body to w.
func (t transport) download(ctx context.Context, path, accept string, w io.Writer) (int64, error) {
	resp, err := t.send(ctx, http.MethodGet, path, accept, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET %s: read reply: %w", path, err)
	}
	return n, nil
}

// maxReply bounds a JSON reply read into memory (exports stream instead).
const maxReply = 32 << 20

func decodeError(resp *http.Response) error {
	e := &Error{StatusCode: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	var body struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Message = body.Error
	} else {
		e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
		if e.Message == "" {
			e.Message = "unexpected status"
		}
	}
	return e
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date; zero
// when there is none or it cannot be read.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

// Client talks to the orchestrator's request API.
type Client struct{ t transport }

// New returns a client for the orchestrator at baseURL. token, when not
// empty, is sent as a bearer token; hc nil means a client with a 30 s
// timeout.
func New(baseURL, token string, hc *http.Client) *Client {
	return &Client{t: newTransport(baseURL, token, hc)}
}

// Subject identifies the person a request is about; either field may be
// empty, not both.
type Subject struct {
	Email  string `json:"email,omitempty"`
	UserID string `json:"user_id,omitempty"`
}

// NewRequest is the body of POST /v1/requests.
type NewRequest struct {
	Type    lifecycle.Type `json:"type"`
	Tenant  string         `json:"tenant"`
	Subject Subject        `json:"subject"`
	// ReceivedAt is RFC 3339; empty means now, as the server sees it.
	ReceivedAt string `json:"received_at,omitempty"`
	Verified   bool   `json:"verified"`
	// Purposes: for a consent withdrawal or an objection, the purposes
	// (retention policies, lethectl sweep list) it covers.
	Purposes []string `json:"purposes,omitempty"`
}

// Accepted is the reply to a submission, or to a decision (verify, deny),
// whose reply carries no deadline.
type Accepted struct {
	ID       string          `json:"id"`
	State    lifecycle.State `json:"state"`
	Deadline Time            `json:"deadline"`
}

// Request is one request with its tasks (GET /v1/requests/{id}).
type Request struct {
	ID          string          `json:"id"`
	Tenant      string          `json:"tenant"`
	Type        lifecycle.Type  `json:"type"`
	State       lifecycle.State `json:"state"`
	Source      string          `json:"source"`
	ReceivedAt  Time            `json:"received_at"`
	Deadline    Time            `json:"deadline"`
	CreatedAt   Time            `json:"created_at"`
	CompletedAt Time            `json:"completed_at"`
	Tasks       []Task          `json:"tasks"`
	// Set when the deadline was extended (Art. 12(3)).
	OriginalDeadline Time   `json:"original_deadline"`
	ExtendedAt       Time   `json:"extended_at"`
	ExtensionReason  string `json:"extension_reason"`
	// The tenant's deadline policy, when not UTC without roll.
	TimeZone         string `json:"time_zone"`
	RollToWorkingDay bool   `json:"roll_to_working_day"`
	// AnsweredAt is when every system had answered (before the deferred
	// erasures of a partially retained request end it).
	AnsweredAt Time `json:"answered_at"`
}

// Task is one system's part of a request.
type Task struct {
	System     string              `json:"system"`
	State      lifecycle.TaskState `json:"state"`
	Outcome    lifecycle.Outcome   `json:"outcome"` // empty while unanswered
	Attempts   int                 `json:"attempts"`
	AnsweredAt Time                `json:"answered_at"`
	// NextAttemptAt is when the orchestrator acts on the task again: a
	// retry, or the follow-up erasure of a deferred task (zero for none).
	NextAttemptAt Time           `json:"next_attempt_at"`
	LegalBasis    string         `json:"legal_basis"`
	RetainUntil   Time           `json:"retain_until"`
	Counts        map[string]int `json:"counts"`
	Remaining     int            `json:"remaining"`
	Detail        string         `json:"detail"`
}

// Policy is a retention policy (GET /v1/policies).
type Policy struct {
	Name       string              `json:"name"`
	Tenant     string              `json:"tenant"`
	Purpose    string              `json:"purpose"`
	Data       string              `json:"data"`
	LegalBasis string              `json:"legal_basis"`
	Consent    bool                `json:"consent"`
	Period     string              `json:"period"`
	Clock      string              `json:"clock"`
	Systems    map[string][]string `json:"systems"`
}

// Policies lists the retention policies of the token's tenants.
func (c *Client) Policies(ctx context.Context) ([]Policy, []byte, error) {
	var out struct {
		Policies []Policy `json:"policies"`
	}
	raw, err := c.t.call(ctx, http.MethodGet, "/v1/policies", nil, &out)
	return out.Policies, raw, err
}

// NewSweep asks for retention runs: one policy of a tenant, or all.
type NewSweep struct {
	Tenant string `json:"tenant"`
	Policy string `json:"policy,omitempty"`
	All    bool   `json:"all,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
}

// Run is a retention run started.
type Run struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Policy string `json:"policy"`
	DryRun bool   `json:"dry_run"`
}

// Sweep starts retention runs; each is then a request of type sweep
// (Get, Certificate).
func (c *Client) Sweep(ctx context.Context, s NewSweep) ([]Run, error) {
	var out struct {
		Runs []Run `json:"runs"`
	}
	_, err := c.t.call(ctx, http.MethodPost, "/v1/sweeps", s, &out)
	return out.Runs, err
}

// Reapply starts a re-application of erasures in a system restored from
// a backup taken at since (RFC 3339); it returns the request's id.
func (c *Client) Reapply(ctx context.Context, tenant, system, since string) ([]string, error) {
	var out struct {
		ID  string   `json:"id"`
		IDs []string `json:"ids"`
	}
	_, err := c.t.call(ctx, http.MethodPost, "/v1/reapply", map[string]string{"tenant": tenant, "system": system, "since": since}, &out)
	if len(out.IDs) == 0 && out.ID != "" {
		out.IDs = []string{out.ID} // an orchestrator from before parts
	}
	return out.IDs, err
}

// Lift lifts restriction id (Art. 18) and returns the lift's request id.
func (c *Client) Lift(ctx context.Context, id, reason string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	_, err := c.t.call(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/lift", map[string]string{"reason": reason}, &out)
	return out.ID, err
}

// Summary is one row of a request listing.
type Summary struct {
	ID         string          `json:"id"`
	Tenant     string          `json:"tenant"`
	Type       lifecycle.Type  `json:"type"`
	State      lifecycle.State `json:"state"`
	ReceivedAt Time            `json:"received_at"`
	Deadline   Time            `json:"deadline"`
}

// Page is one page of a listing; an empty NextCursor means the last page.
type Page struct {
	Requests   []Summary `json:"requests"`
	NextCursor string    `json:"next_cursor"`
}

// ListOptions filter a listing; zero values are left out of the query.
type ListOptions struct {
	State  lifecycle.State
	Tenant string
	// EventID finds the request an account deletion event opened.
	EventID string
	Limit   int
	Cursor  string
}

// Submit files a new request. The raw reply is returned for --json.
func (c *Client) Submit(ctx context.Context, r NewRequest) (Accepted, []byte, error) {
	var out Accepted
	raw, err := c.t.call(ctx, http.MethodPost, "/v1/requests", r, &out)
	return out, raw, err
}

// Verification is the body of POST /v1/requests/{id}/verify: how the
// subject's identity was checked, with an optional note for the record.
type Verification struct {
	Method string `json:"method"`
	// Note holds no personal data: the certificate keeps it, the log its
	// hash (500 bytes at most).
	Note string `json:"note,omitempty"`
}

// Verify records that the subject's identity was checked, how, and by the
// token's holder, moving the request from pending_verification to open.
// The server answers 409 when the request is not pending verification.
func (c *Client) Verify(ctx context.Context, id string, v Verification) (Accepted, error) {
	var out Accepted
	_, err := c.t.call(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/verify", v, &out)
	return out, err
}

// Denial is the body of POST /v1/requests/{id}/deny: the ground of the
// refusal, with an optional note for the record.
type Denial struct {
	Reason string `json:"reason"`
	// Note holds no personal data, as a Verification's.
	Note string `json:"note,omitempty"`
}

// Deny refuses a request pending verification (GDPR Art. 12(5), or the
// identity not established): it ends denied, no system is asked. The
// server answers 409 when the request is not pending verification.
func (c *Client) Deny(ctx context.Context, id string, d Denial) (Accepted, error) {
	var out Accepted
	_, err := c.t.call(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/deny", d, &out)
	return out, err
}

// Extend extends a request's deadline by two further months with a reason
// the person is told (POST /v1/requests/{id}/extend).
func (c *Client) Extend(ctx context.Context, id, reason string) (Request, error) {
	var out Request
	_, err := c.t.call(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/extend", map[string]string{"reason": reason}, &out)
	return out, err
}

// withQuery appends q to path, when there is one.
func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// Deadline is the reply to GET /v1/deadline.
type Deadline struct {
	Tenant           string   `json:"tenant"`
	ReceivedAt       Time     `json:"received_at"`
	Deadline         Time     `json:"deadline"`
	ExtendedDeadline Time     `json:"extended_deadline"`
	TimeZone         string   `json:"time_zone"`
	RollToWorkingDay bool     `json:"roll_to_working_day"`
	Holidays         []string `json:"holidays"`
}

// Deadline asks when a request of tenant received at receivedAt (RFC 3339;
// "" for now) would be due, without filing one. The raw reply is returned
// for --json.
func (c *Client) Deadline(ctx context.Context, tenant, receivedAt string) (Deadline, []byte, error) {
	q := url.Values{}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	if receivedAt != "" {
		q.Set("received_at", receivedAt)
	}
	var out Deadline
	raw, err := c.t.call(ctx, http.MethodGet, withQuery("/v1/deadline", q), nil, &out)
	return out, raw, err
}

// Get returns a request with its tasks, and the raw reply for --json.
func (c *Client) Get(ctx context.Context, id string) (Request, []byte, error) {
	var out Request
	raw, err := c.t.call(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(id), nil, &out)
	return out, raw, err
}

// List returns one page of requests.
func (c *Client) List(ctx context.Context, o ListOptions) (Page, error) {
	q := url.Values{}
	if o.State != "" {
		q.Set("state", string(o.State))
	}
	if o.Tenant != "" {
		q.Set("tenant", o.Tenant)
	}
	if o.EventID != "" {
		q.Set("event_id", o.EventID)
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	var out Page
	_, err := c.t.call(ctx, http.MethodGet, withQuery("/v1/requests", q), nil, &out)
	return out, err
}

// Export streams the export bundle (a ZIP) of a finished export request to w and
// returns the number of bytes written. The server answers 409 while the
// request is not finished.
func (c *Client) Export(ctx context.Context, id string, w io.Writer) (int64, error) {
	return c.t.download(ctx, "/v1/requests/"+url.PathEscape(id)+"/export", "application/zip", w)
}

// ExportLink is a single-use download link made for a data subject.
type ExportLink struct {
	URL       string `json:"url"`
	ExpiresAt Time   `json:"expires_at"`
}

// ExportLink makes a download link of a finished export request for the
// person whose data it is: it works once, without a token, until it
// expires. The server answers 410 once the export was collected or expired.
func (c *Client) ExportLink(ctx context.Context, id string) (ExportLink, error) {
	var out ExportLink
	_, err := c.t.call(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/export/link", struct{}{}, &out)
	return out, err
}

// Certificate streams the certificate of fulfilment of an ended request to
// w, byte for byte as the server sent it (a verifier needs those exact
// bytes), and returns the number of bytes written. html asks for the page
// for people instead. The server answers 409 while the request has not
// ended, 404 for an unknown id.
func (c *Client) Certificate(ctx context.Context, id string, html bool, w io.Writer) (int64, error) {
	path, accept := "/v1/requests/"+url.PathEscape(id)+"/certificate", "application/json"
	if html {
		path, accept = path+".html", "text/html"
	}
	return c.t.download(ctx, path, accept, w)
}

// Keys returns the keys file the orchestrator serves (GET /v1/keys): its
// own public key and every registered connector key, with their validity.
// The bytes are returned as sent, to be saved as is.
func (c *Client) Keys(ctx context.Context) ([]byte, error) {
	return c.t.call(ctx, http.MethodGet, "/v1/keys", nil, nil)
}

// TreeHead returns the transparency log's current signed tree head (GET
// /v1/log/tree-head), as sent.
func (c *Client) TreeHead(ctx context.Context) ([]byte, error) {
	return c.t.call(ctx, http.MethodGet, "/v1/log/tree-head", nil, nil)
}

// LogFile reads a file of the public log (C2SP tlog-tiles): "checkpoint",
// "tile/0/000.p/5", "tile/entries/000"... It needs no token.
func (c *Client) LogFile(ctx context.Context, path string) ([]byte, error) {
	var b bytes.Buffer
	if _, err := c.t.download(ctx, "/log/"+path, "*/*", &b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Consistency is the proof that the log of size New extends the log of
// size Old.
type Consistency struct {
	Old   int64          `json:"old"`
	New   int64          `json:"new"`
	Proof tlog.TreeProof `json:"proof"` // base64 hashes in JSON
}

// Consistency asks for the proof that the log of size newSize extends the
// log of size oldSize. The server answers 400 when old > new or new is
// larger than the log.
func (c *Client) Consistency(ctx context.Context, oldSize, newSize int64) (Consistency, error) {
	q := url.Values{}
	q.Set("old", strconv.FormatInt(oldSize, 10))
	q.Set("new", strconv.FormatInt(newSize, 10))
	var out Consistency
	_, err := c.t.call(ctx, http.MethodGet, "/v1/log/consistency?"+q.Encode(), nil, &out)
	return out, err
}

// Secret is a token's secret. It formats as "[redacted]" with %v and %s,
// so it is never printed by accident: print string(s), once, on purpose.
type Secret string

// String implements fmt.Stringer.
func (Secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return `"[redacted]"` }

// Token is an API token as the orchestrator shows it (GET /v1/tokens).
type Token struct {
	ID string `json:"id"`
	// Secret is the token itself: set in the reply to CreateToken only,
	// the one time it is shown.
	Secret Secret `json:"token"`
	Name   string `json:"name"`
	// Tenant is the tenant it acts for; "*" (every one) for an admin.
	Tenant     string `json:"tenant"`
	Role       string `json:"role"`
	CreatedAt  Time   `json:"created_at"`
	LastUsedAt Time   `json:"last_used_at"`
	ExpiresAt  Time   `json:"expires_at"` // zero: never
	RevokedAt  Time   `json:"revoked_at"` // zero: not revoked
}

// NewToken is the body of POST /v1/tokens.
type NewToken struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant"`
	Role   string `json:"role"`
	// ExpiresAt is RFC 3339; empty: the token never expires.
	ExpiresAt string `json:"expires_at,omitempty"`
}

// CreateToken issues a token (admin only). The reply's Secret is the
// token, shown this once: the orchestrator keeps only its hash.
func (c *Client) CreateToken(ctx context.Context, nt NewToken) (Token, error) {
	var out Token
	_, err := c.t.call(ctx, http.MethodPost, "/v1/tokens", nt, &out)
	return out, err
}

// Tokens lists every token, revoked and expired ones included, without
// their secrets (admin only). The raw reply is returned for --json.
func (c *Client) Tokens(ctx context.Context) ([]Token, []byte, error) {
	var out struct {
		Tokens []Token `json:"tokens"`
	}
	raw, err := c.t.call(ctx, http.MethodGet, "/v1/tokens", nil, &out)
	return out.Tokens, raw, err
}

// RevokeToken revokes a token at once: its next call is answered 401
// (admin only). The server answers 404 for an unknown id.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	_, err := c.t.call(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil)
	return err
}

// Accounts talks to the demo accounts system's admin API.
type Accounts struct{ t transport }

// NewAccounts returns a client for the accounts admin API at baseURL;
// token, when not empty, is sent as a bearer token.
func NewAccounts(baseURL, token string, hc *http.Client) *Accounts {
	return &Accounts{t: newTransport(baseURL, token, hc)}
}

// Deleted is the reply to an account deletion: the account's user id and
// the id of the account.deleted event the orchestrator will receive.
type Deleted struct {
	UserID  string `json:"user_id"`
	EventID string `json:"event_id"`
}

// DeleteAccount deletes a tenant's account by email, as the account's owner
// would in the product. The server answers 404 for an unknown account.
func (a *Accounts) DeleteAccount(ctx context.Context, tenant, email string) (Deleted, error) {
	in := struct {
		Tenant string `json:"tenant"`
		Email  string `json:"email"`
	}{tenant, email}
	var out Deleted
	_, err := a.t.call(ctx, http.MethodPost, "/v1/accounts/delete", in, &out)
	return out, err
}

// Retry opens a new round of attempts for a request's task that failed or
// ran out of attempts (POST /v1/requests/{id}/tasks/{system}/retry). The
// server answers 409 when the task did not fail.
func (c *Client) Retry(ctx context.Context, id, system string) (Accepted, error) {
	var out Accepted
	_, err := c.t.call(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/tasks/"+url.PathEscape(system)+"/retry", nil, &out)
	return out, err
}

// Resolve records a failed task fixed by hand, with a note saying what was
// done (POST /v1/requests/{id}/tasks/{system}/resolve).
func (c *Client) Resolve(ctx context.Context, id, system, note string) (Accepted, error) {
	var out Accepted
	_, err := c.t.call(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/tasks/"+url.PathEscape(system)+"/resolve", map[string]string{"note": note}, &out)
	return out, err
}

// DeadLetter is a task that ran out of attempts.
type DeadLetter struct {
	RequestID string `json:"request_id"`
	Tenant    string `json:"tenant"`
	System    string `json:"system"`
	Attempts  int    `json:"attempts"`
	Detail    string `json:"detail"`
	DeadAt    Time   `json:"dead_at"`
}

// DeadLetters lists the dead letters the token may see, of one system and
// since a time (RFC 3339) when given (GET /v1/deadletters). The raw reply
// is returned for --json.
func (c *Client) DeadLetters(ctx context.Context, system, since string) ([]DeadLetter, []byte, error) {
	q := url.Values{}
	if system != "" {
		q.Set("system", system)
	}
	if since != "" {
		q.Set("since", since)
	}
	var out struct {
		DeadLetters []DeadLetter `json:"deadletters"`
	}
	raw, err := c.t.call(ctx, http.MethodGet, withQuery("/v1/deadletters", q), nil, &out)
	return out.DeadLetters, raw, err
}

// Replayed is the reply to a bulk replay: how many tasks got a new round,
// and the requests skipped (they keep no identifiers: resolve them by hand).
type Replayed struct {
	Retried int      `json:"retried"`
	Skipped []string `json:"skipped"`
}

// Replay re-drives a system's dead letters, since a time when given (POST
// /v1/deadletters/replay).
func (c *Client) Replay(ctx context.Context, system, since string) (Replayed, error) {
	var out Replayed
	body := map[string]string{"system": system}
	if since != "" {
		body["since"] = since
	}
	_, err := c.t.call(ctx, http.MethodPost, "/v1/deadletters/replay", body, &out)
	return out, err
}

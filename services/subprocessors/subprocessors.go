// Package subprocessors is the connector for a company's sub-processors:
// on an erasure it calls each vendor's deletion API (GDPR Art. 19, 28: the
// recipients of the data are told, and processors delete too); on an export
// (Art. 15, 20) it asks each vendor with an access API for the subject's
// records, and tells each vendor without one of the request, listing it in
// the export as contacted. Vendors are configured in a YAML file (see
// vendors.demo.yaml); package standin plays the demo's vendors.
//
// Data categories in receipts are vendor names. For an erasure a count of 1
// means the vendor confirmed it deleted what it held of the subject, since
// vendors do not say how many records that was; for an export a count is
// the number of records the vendor returned.
//
// An export's records are grouped as connector.Records: a vendor's rows
// under its data_category (default "sub_processors"), in a table named after
// the vendor; the vendors without an access API in the table
// "vendors_without_export" of "sub_processors".
package subprocessors

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// Name is the system name the orchestrator knows this connector by.
const Name = "subprocessors"

// maxBody bounds what is read of a vendor's answer.
const maxBody = 8 << 20

// System calls the vendors. It implements connector.System and
// connector.Seeder.
type System struct {
	vendors []vendor
	db      *sql.DB
	client  *http.Client
	timeout time.Duration
	log     *slog.Logger
}

var (
	_ connector.System = (*System)(nil)
	_ connector.Seeder = (*System)(nil)
)

// Open validates cfg's vendors, reads their secrets, and opens the record of
// vendor confirmations in env.DataDir/subprocessors.db.
func Open(ctx context.Context, env connector.Env, cfg Config) (*System, error) {
	cfg.setDefaults()
	vs := cfg.Vendors
	if len(vs) == 0 && len(cfg.VendorsYAML) > 0 {
		var err error
		if vs, err = ParseVendors(cfg.VendorsYAML); err != nil {
			return nil, err
		}
	}
	compiled, err := compile(vs, cfg.Vars, cfg.Getenv)
	if err != nil {
		return nil, err
	}
	db, err := sqlitedb.Open(filepath.Join(env.DataDir, "subprocessors.db"), sqlitedb.WithDurability(env.Durability))
	if err != nil {
		return nil, fmt.Errorf("subprocessors: %w", err)
	}
	// One row per vendor that answered a task's deletion for good, so that
	// a retry calls only the vendors still to answer. It holds no subject
	// identifier: the pipeline must not become a copy of the data it erases.
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS confirmations (
		task_id      TEXT NOT NULL,
		vendor       TEXT NOT NULL,
		held         INTEGER NOT NULL, -- 1: the vendor deleted data (2xx); 0: it had none (404)
		status       INTEGER NOT NULL,
		confirmed_at TEXT NOT NULL,
		PRIMARY KEY (task_id, vendor))`); err != nil {
		db.Close()
		return nil, fmt.Errorf("subprocessors: schema: %w", err)
	}
	// One row per vendor without an access API told of a task's export, so
	// that a retry lists the same time and does not tell it again. No
	// subject identifier either.
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS notifications (
		task_id     TEXT NOT NULL,
		vendor      TEXT NOT NULL,
		status      INTEGER NOT NULL,
		notified_at TEXT NOT NULL, -- RFC 3339, UTC, as the export lists it
		PRIMARY KEY (task_id, vendor))`); err != nil {
		db.Close()
		return nil, fmt.Errorf("subprocessors: schema: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &System{vendors: compiled, db: db, client: cfg.HTTPClient, timeout: cfg.Timeout, log: log}, nil
}

// Close closes the confirmations database.
func (s *System) Close() error { return s.db.Close() }

// Seed does nothing and returns nil: the data is the vendors', and the
// demo's vendors (package standin) seed themselves. It exists so that a demo
// stack starting every connector with --seed starts this one too.
func (s *System) Seed(context.Context, int) error { return nil }

// Erase calls the deletion API of every vendor that has not yet confirmed
// this task, then asks the vendors with an access API whether they still
// hold the subject. A vendor confirms with a 2xx (it deleted) or a 404 (it
// had nothing). If any vendor failed, Erase returns an error that is
// retryable only if every failure was (429, 5xx, timeout, connection
// refused); the vendors that confirmed are not called again.
func (s *System) Erase(ctx context.Context, t connector.Task) (connector.Result, error) {
	if err := ctx.Err(); err != nil {
		return connector.Result{}, err
	}
	held, err := s.confirmed(ctx, t.TaskID)
	if err != nil {
		return connector.Result{}, err
	}
	var errs []error
	retry := true
	for _, v := range s.vendors {
		if _, ok := held[v.Name]; ok {
			continue
		}
		status, _, r, err := s.call(ctx, v, v.Delete, t, false)
		if err != nil {
			if ctx.Err() != nil {
				return connector.Result{}, err
			}
			errs, retry = append(errs, err), retry && r
			continue
		}
		held[v.Name] = status != http.StatusNotFound
		if _, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO confirmations (task_id, vendor, held, status, confirmed_at)
			VALUES (?, ?, ?, ?, ?)`, t.TaskID, v.Name, held[v.Name], status, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			return connector.Result{}, fmt.Errorf("subprocessors: record confirmation of %s: %w", v.Name, err)
		}
		s.log.Info("vendor confirmed erasure", "task_id", t.TaskID, "vendor", v.Name, "status", status)
	}
	if len(errs) > 0 {
		return connector.Result{}, failure(errs, retry)
	}

	res := connector.Result{Outcome: connector.NotFound}
	for name, h := range held {
		if h {
			if res.Counts == nil {
				res.Outcome, res.Counts = connector.Erased, map[string]int64{}
			}
			res.Counts[name] = 1
		}
	}
	res.Remaining, err = s.remaining(ctx, t)
	if err != nil {
		return connector.Result{}, err
	}
	return res, nil
}

// confirmed returns the vendors that confirmed the task's deletion before,
// and whether each held data.
func (s *System) confirmed(ctx context.Context, taskID string) (map[string]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT vendor, held FROM confirmations WHERE task_id = ?`, taskID)
	if err != nil {
		return nil, fmt.Errorf("subprocessors: read confirmations: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var v string
		var h bool
		if err := rows.Scan(&v, &h); err != nil {
			return nil, fmt.Errorf("subprocessors: read confirmations: %w", err)
		}
		out[v] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("subprocessors: read confirmations: %w", err)
	}
	return out, nil
}

// remaining counts the vendors whose access API still finds the subject.
// Vendors without one are not counted: nothing can be looked at.
func (s *System) remaining(ctx context.Context, t connector.Task) (int64, error) {
	var n int64
	var errs []error
	retry := true
	for _, v := range s.vendors {
		if v.Access.URL == "" {
			continue
		}
		status, _, r, err := s.call(ctx, v, v.Access, t, false)
		if err != nil {
			if ctx.Err() != nil {
				return 0, err
			}
			errs, retry = append(errs, err), retry && r
			continue
		}
		if status != http.StatusNotFound {
			n++
		}
	}
	if len(errs) > 0 {
		return 0, failure(errs, retry)
	}
	return n, nil
}

// Statuses of the export's rows about the vendors without an access API.
const (
	statusContacted     = "contacted, no export API"
	statusUncontactable = "no export API and no way to contact it configured"
)

// Export asks every vendor with an access API for the subject's data and
// files its rows under the vendor's data category, in a table named after
// the vendor; Counts has each vendor's number of rows. A vendor without an
// access API is told of the request by its notify call, if it has one, and
// listed in the table vendors_without_export of data category
// sub_processors, with the time it was told: the person learns that it may
// hold data the export does not show.
//
// The outcome is NotFound only if every vendor has an access API and none
// holds a record of the subject. A vendor that fails fails the export,
// retryable if every failure was; the vendors already notified for this
// task are not notified again.
func (s *System) Export(ctx context.Context, t connector.Task) (connector.Result, error) {
	if err := ctx.Err(); err != nil {
		return connector.Result{}, err
	}
	records := connector.Records{}
	add := func(category, table string, rows ...map[string]any) {
		if records[category] == nil {
			records[category] = map[string][]map[string]any{}
		}
		records[category][table] = append(records[category][table], rows...)
	}
	counts := map[string]int64{}
	var errs []error
	retry := true
	for _, v := range s.vendors {
		if v.Access.URL == "" {
			if v.Notify.URL == "" {
				s.log.Warn("vendor has no access API and no notify request: the export lists it as not contacted",
					"task_id", t.TaskID, "vendor", v.Name)
				add(DefaultDataCategory, withoutExportTable, map[string]any{"vendor": v.Name, "status": statusUncontactable})
				continue
			}
			at, r, err := s.notify(ctx, v, t)
			if err != nil {
				if ctx.Err() != nil {
					return connector.Result{}, err
				}
				errs, retry = append(errs, err), retry && r
				continue
			}
			add(DefaultDataCategory, withoutExportTable, map[string]any{"vendor": v.Name, "status": statusContacted, "notified_at": at})
			continue
		}
		status, body, r, err := s.call(ctx, v, v.Access, t, true)
		if err != nil {
			if ctx.Err() != nil {
				return connector.Result{}, err
			}
			errs, retry = append(errs, err), retry && r
			continue
		}
		if status == http.StatusNotFound {
			continue
		}
		rows, err := parseRows(body)
		if err != nil {
			// A vendor's format does not change on a retry.
			errs, retry = append(errs, fmt.Errorf("vendor %s: %s %s: %w", v.Name, v.Access.Method, v.redacted(v.Access), err)), false
			continue
		}
		if len(rows) == 0 {
			continue
		}
		add(v.DataCategory, v.Name, rows...)
		counts[v.Name] = int64(len(rows))
	}
	if len(errs) > 0 {
		return connector.Result{}, failure(errs, retry)
	}
	if len(records) == 0 {
		return connector.Result{Outcome: connector.NotFound}, nil
	}
	b, err := json.Marshal(records)
	if err != nil {
		return connector.Result{}, fmt.Errorf("subprocessors: encode export: %w", err)
	}
	return connector.Result{Outcome: connector.Exported, Counts: counts, Export: b}, nil
}

// notify tells a vendor without an access API of the task's access request,
// once per task, and returns when it was told (RFC 3339, UTC): a retry of
// the export lists the first notification and does not make another. Only a
// 2xx answer is a notification: a 404 says the call went nowhere.
func (s *System) notify(ctx context.Context, v vendor, t connector.Task) (notifiedAt string, retry bool, err error) {
	const query = `SELECT notified_at FROM notifications WHERE task_id = ? AND vendor = ?`
	switch err := s.db.QueryRowContext(ctx, query, t.TaskID, v.Name).Scan(&notifiedAt); {
	case err == nil:
		return notifiedAt, false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return "", true, fmt.Errorf("subprocessors: read notifications: %w", err)
	}
	status, _, retry, err := s.call(ctx, v, v.Notify, t, false)
	if err != nil {
		return "", retry, err
	}
	if status == http.StatusNotFound {
		return "", false, fmt.Errorf("vendor %s: %s %s: status 404: no notification was received", v.Name, v.Notify.Method, v.redacted(v.Notify))
	}
	// OR IGNORE: a concurrent attempt of the same task may have notified
	// too; the export lists the first notification recorded.
	if _, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO notifications (task_id, vendor, status, notified_at) VALUES (?, ?, ?, ?)`,
		t.TaskID, v.Name, status, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return "", true, fmt.Errorf("subprocessors: record notification of %s: %w", v.Name, err)
	}
	if err := s.db.QueryRowContext(ctx, query, t.TaskID, v.Name).Scan(&notifiedAt); err != nil {
		return "", true, fmt.Errorf("subprocessors: read notifications: %w", err)
	}
	s.log.Info("vendor without an access API notified of an access request", "task_id", t.TaskID, "vendor", v.Name, "status", status)
	return notifiedAt, false, nil
}

// parseRows reads a vendor's access answer as rows of the export:
//   - an array of objects is a row per object;
//   - an object whose "records" member is an array of objects is a row per
//     object of that array (its other members, a count or a cursor, say,
//     are not rows);
//   - any other object is one row, and an empty object none.
//
// Values keep their JSON types, numbers their digits; an object or array
// value stays as it is, the bundle showing it as JSON. Errors never quote
// the answer: it is the subject's data.
func parseRows(body []byte) ([]map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, errors.New("the answer is not JSON")
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("the answer has data after its JSON value")
	}
	if obj, ok := v.(map[string]any); ok {
		recs, ok := obj["records"].([]any)
		if !ok {
			if len(obj) == 0 {
				return nil, nil
			}
			return []map[string]any{obj}, nil
		}
		v = recs
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf(`the answer is a JSON %s: want an object, an array of objects or {"records": [objects]}`, jsonKind(v))
	}
	rows := make([]map[string]any, 0, len(arr))
	for i, e := range arr {
		row, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record %d of the answer is a JSON %s, not an object", i+1, jsonKind(e))
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// jsonKind names the kind of a decoded JSON value, never the value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	default:
		return "object"
	}
}

// failure is the error of a task some vendors failed: retryable only if
// every failure was, since a permanent one will not pass by retrying.
func failure(errs []error, retry bool) error {
	err := errors.Join(errs...)
	if retry {
		return connector.Retryable(err)
	}
	return err
}

// call makes one templated request to a vendor. It returns the status of an
// answer that settles the question (2xx or 404) with, if keep is set, the
// body of a 2xx (at most maxBody bytes, an error beyond), or an error and
// whether another attempt may succeed. Errors show the URL template, never
// the rendered URL: that holds the subject's identifiers.
func (s *System) call(ctx context.Context, v vendor, r Request, t connector.Task, keep bool) (status int, body []byte, retry bool, err error) {
	task := map[string]string{
		varEmail:     pseudonym.Normalize(t.Subject.Email),
		varUserID:    strings.TrimSpace(t.Subject.UserID),
		varTenant:    t.Tenant,
		varRequestID: t.RequestID,
	}
	if t.Deadline.Unix() > 0 { // a task without one reads as the zero time or 1970
		task[varDeadline] = t.Deadline.UTC().Format(time.RFC3339)
	}
	redacted := v.redacted(r)
	fail := func(retry bool, format string, a ...any) (int, []byte, bool, error) {
		return 0, nil, retry, fmt.Errorf("vendor %s: %s %s: %s", v.Name, r.Method, redacted, fmt.Sprintf(format, a...))
	}
	for _, tmpl := range []string{r.URL, r.Body} {
		for _, m := range placeholder.FindAllStringSubmatch(tmpl, -1) {
			if slices.Contains(taskVars, m[1]) && task[m[1]] == "" {
				// Not sent: with an empty identifier a vendor would answer
				// 404 for a person it may well hold.
				return fail(false, "the task has no %s, which this request needs", m[1])
			}
		}
	}
	var rd io.Reader
	if r.Body != "" {
		rd = strings.NewReader(render(r.Body, v.vars, task, jsonEscape))
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, render(r.URL, v.vars, task, urlEscape), rd)
	if err != nil {
		return fail(false, "invalid request") // err would quote the URL
	}
	if r.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "lethe-subprocessors")
	if v.authHeader != "" {
		req.Header.Set(v.Auth.Header, v.authHeader)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// A *url.Error's message holds the URL; the error inside does not.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, nil, true, fmt.Errorf("vendor %s: %s %s: %w", v.Name, r.Method, redacted, err)
	}
	defer resp.Body.Close()
	switch code := resp.StatusCode; {
	case code == http.StatusNotFound || code >= 200 && code < 300:
		if !keep || code == http.StatusNotFound {
			// Read for the connection's reuse, and so that an answer cut
			// short is retried as before; never kept.
			if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody)); err != nil {
				return fail(true, "read answer: %v", err)
			}
			return code, nil, false, nil
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
		if err != nil {
			return fail(true, "read answer: %v", err)
		}
		if len(body) > maxBody {
			return fail(false, "the answer is over %d bytes", maxBody)
		}
		return code, body, false, nil
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		return fail(true, "status %d", code)
	default:
		return fail(false, "status %d", code)
	}
}

// redacted is r's URL with the caller's variables filled in and the task's
// placeholders left as they are: what errors and logs may show.
func (v vendor) redacted(r Request) string {
	keep := map[string]string{}
	for _, k := range taskVars {
		keep[k] = "{" + k + "}"
	}
	return render(r.URL, v.vars, keep, identity)
}

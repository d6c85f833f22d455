// Package subprocessors is the connector for a company's sub-processors:
// on an erasure it calls each vendor's deletion API (GDPR Art. 19, 28: the
// recipients of the data are told, and processors delete too), on an export
// each vendor's access API. Vendors are configured in a YAML file (see
// vendors.demo.yaml); package standin plays the demo's vendors.
//
// Data categories in receipts are vendor names; a count of 1 means the
// vendor confirmed it deleted (or, for an export, returned) what it held of
// the subject, since vendors do not say how many records that was.
package subprocessors

import (
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
		status, _, r, err := s.call(ctx, v, v.Delete, t)
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
		status, _, r, err := s.call(ctx, v, v.Access, t)
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

type exportDoc struct {
	// Vendors maps each vendor that holds data of the subject to what its
	// access API returned.
	Vendors map[string]json.RawMessage `json:"vendors"`
	// WithoutAccessAPI lists the vendors that could not be asked.
	WithoutAccessAPI []string `json:"without_access_api,omitempty"`
}

// Export asks every vendor with an access API for the subject's data.
func (s *System) Export(ctx context.Context, t connector.Task) (connector.Result, error) {
	if err := ctx.Err(); err != nil {
		return connector.Result{}, err
	}
	doc := exportDoc{Vendors: map[string]json.RawMessage{}}
	counts := map[string]int64{}
	var errs []error
	retry := true
	for _, v := range s.vendors {
		if v.Access.URL == "" {
			doc.WithoutAccessAPI = append(doc.WithoutAccessAPI, v.Name)
			continue
		}
		status, body, r, err := s.call(ctx, v, v.Access, t)
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
		if !json.Valid(body) { // kept, as a JSON string
			body, _ = json.Marshal(string(body))
		}
		doc.Vendors[v.Name] = body
		counts[v.Name] = 1
	}
	if len(errs) > 0 {
		return connector.Result{}, failure(errs, retry)
	}
	if len(counts) == 0 {
		return connector.Result{Outcome: connector.NotFound}, nil
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return connector.Result{}, fmt.Errorf("subprocessors: encode export: %w", err)
	}
	return connector.Result{Outcome: connector.Exported, Counts: counts, Export: b}, nil
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
// answer that settles the question (2xx or 404) with its body, or an error
// and whether another attempt may succeed. Errors show the URL template,
// never the rendered URL: that holds the subject's identifiers.
func (s *System) call(ctx context.Context, v vendor, r Request, t connector.Task) (status int, body []byte, retry bool, err error) {
	task := map[string]string{
		varEmail:  pseudonym.Normalize(t.Subject.Email),
		varUserID: strings.TrimSpace(t.Subject.UserID),
		varTenant: t.Tenant,
	}
	redacted := render(r.URL, v.vars, map[string]string{varEmail: "{email}", varUserID: "{user_id}", varTenant: "{tenant}"}, identity)
	fail := func(retry bool, format string, a ...any) (int, []byte, bool, error) {
		return 0, nil, retry, fmt.Errorf("vendor %s: %s %s: %s", v.Name, r.Method, redacted, fmt.Sprintf(format, a...))
	}
	for _, tmpl := range []string{r.URL, r.Body} {
		for _, m := range placeholder.FindAllStringSubmatch(tmpl, -1) {
			if val, ok := task[m[1]]; ok && val == "" {
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
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	switch code := resp.StatusCode; {
	case code == http.StatusNotFound || code >= 200 && code < 300:
		if err != nil {
			return fail(true, "read answer: %v", err)
		}
		return code, body, false, nil
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		return fail(true, "status %d", code)
	default:
		return fail(false, "status %d", code)
	}
}

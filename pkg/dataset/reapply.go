package dataset

import (
	"context"
	"fmt"
	"strings"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/pseudonym"
)

// Reapply erases again, after a restore, everyone the task names by the
// keyed hash of an identifier: every identifier in the tenant's rows of
// the tables that name their subject (an email or a user id column) is
// hashed with the task's key as the orchestrator hashes a subject
// ("email:<normalised address>", "user_id:<id>"), and each match is
// erased as an erasure task would (joined tables included). The engine
// makes it a connector.Reapplier.
func (e *Engine) Reapply(ctx context.Context, task connector.ReapplyTask) (connector.Result, error) {
	if err := e.config(); err != nil {
		return connector.Result{}, err
	}
	if task.Tenant == "" || len(task.Key) == 0 {
		return connector.Result{}, fmt.Errorf("%w: a re-application needs a tenant and a subject key", ErrConfig)
	}
	var found []connector.Subject
	seen := map[string]bool{}
	for i := range e.m.Tables {
		t := &e.m.Tables[i]
		for _, c := range []struct{ column, kind string }{{t.Subject.Email, "email:"}, {t.Subject.UserID, "user_id:"}} {
			if c.column == "" {
				continue
			}
			q := newQuery(e.dialect).w("SELECT DISTINCT ", quote(c.column), " FROM ", quote(t.Name), " WHERE ", quote(t.Tenant), " = ").arg(task.Tenant)
			rows, err := e.db.QueryContext(ctx, q.String(), q.args...)
			if err != nil {
				return connector.Result{}, dbErr("reapply", t.Name, err)
			}
			for rows.Next() {
				var v *string
				if err := rows.Scan(&v); err != nil {
					rows.Close()
					return connector.Result{}, dbErr("reapply", t.Name, err)
				}
				if v == nil {
					continue
				}
				id := strings.TrimSpace(*v)
				if c.kind == "email:" {
					id = pseudonym.Normalize(id)
				}
				if id == "" || seen[c.kind+id] || !task.Hashes[pseudonym.Hash(task.Key, c.kind+id)] {
					continue
				}
				seen[c.kind+id] = true
				s := connector.Subject{UserID: id}
				if c.kind == "email:" {
					s = connector.Subject{Email: id}
				}
				found = append(found, s)
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return connector.Result{}, dbErr("reapply", t.Name, err)
			}
		}
	}
	res := connector.Result{Outcome: connector.NotFound, Counts: map[string]int64{}}
	for i, s := range found {
		r, err := e.Erase(ctx, connector.Task{RequestID: task.RequestID, TaskID: fmt.Sprintf("%s#%d", task.TaskID, i), Tenant: task.Tenant, Subject: s})
		if err != nil {
			return connector.Result{}, err
		}
		if r.Outcome == connector.NotFound {
			continue
		}
		res.Outcome = connector.Erased
		for c, n := range r.Counts {
			res.Counts[c] += n
		}
		res.Remaining += r.Remaining
	}
	return res, nil
}

package devstack

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/dataset"
	"github.com/lethe-dev/lethe/pkg/piitest"
	"github.com/lethe-dev/lethe/pkg/sqlitedb"
)

// TestReapplyEndToEnd: a system restored from a backup loses again what
// was erased since: copy the accounts store, erase three people, put the
// copy's rows back, re-apply; the three are gone again, no one else is
// touched, and the orchestrator held no identifier in clear to do it.
//
// A task carries at most two hashes here: the three people go in two
// parts, each a request with its receipt and certificate.
func TestReapplyEndToEnd(t *testing.T) {
	matrixStart(t, func(t *testing.T, start func(...func(*Config)) *harness) {
		reapplyEndToEnd(t, start(func(c *Config) { c.Orchestrator.ReapplyChunk = 2 }))
	})
}

func reapplyEndToEnd(t *testing.T, h *harness) {
	store := filepath.Join(h.dir, "accounts", "accounts.db")
	backup := filepath.Join(t.TempDir(), "accounts-backup.db")
	taken := h.clock.Now().Add(-time.Second).UTC()
	h.exec("accounts/accounts.db", `VACUUM INTO '`+backup+`'`)
	people := []int{2, 3, 5}
	for _, i := range people {
		_, out := h.call("POST", h.s.API+"/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"`+dataset.DemoEmail(i)+`"},"verified":true}`)
		h.waitState(out["id"].(string), "fulfilled", "partially_retained")
	}
	rowsOf := func(i int) int {
		db, err := sqlitedb.Open(store)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		uid := dataset.DemoUserID(i)
		if err := db.QueryRow(`SELECT (SELECT count(*) FROM users WHERE id = ?) + (SELECT count(*) FROM logins WHERE user_id = ?)`, uid, uid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	total := func() int {
		db, err := sqlitedb.Open(store)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(`SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM logins) + (SELECT count(*) FROM technical_logs)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, i := range people {
		if rowsOf(i) != 0 {
			t.Fatalf("person %d was not erased", i)
		}
	}
	others := total()
	// The restore: every row of the backup back in place.
	h.exec("accounts/accounts.db", `ATTACH '`+backup+`' AS backup;
		INSERT OR IGNORE INTO main.users SELECT * FROM backup.users;
		INSERT OR IGNORE INTO main.logins SELECT * FROM backup.logins;
		INSERT OR IGNORE INTO main.technical_logs SELECT * FROM backup.technical_logs;
		INSERT OR IGNORE INTO main.comments SELECT * FROM backup.comments;`)
	for _, i := range people {
		if rowsOf(i) == 0 {
			t.Fatalf("the restore did not bring person %d back: the test proves nothing", i)
		}
	}
	code, out := h.call("POST", h.s.API+"/v1/reapply", `{"tenant":"demo","system":"accounts","since":"`+taken.Format(time.RFC3339)+`"}`)
	if code != 202 {
		t.Fatalf("reapply = %d %v", code, out)
	}
	ids := out["ids"].([]any)
	if len(ids) != 2 || out["id"] != ids[0] {
		t.Fatalf("three people at two per task made %v, want two parts", out)
	}
	profiles := 0.0
	for _, id := range ids {
		view := h.waitState(id.(string), "fulfilled")
		n, _ := tasks(view)["accounts"]["counts"].(map[string]any)["profile"].(float64)
		profiles += n
	}
	if profiles != float64(len(people)) {
		t.Errorf("the re-application erased %v profiles, want %d", profiles, len(people))
	}
	for _, i := range people {
		if n := rowsOf(i); n != 0 {
			t.Errorf("person %d has %d rows after the re-application", i, n)
		}
	}
	if now := total(); now != others {
		t.Errorf("%d rows after the re-application, %d before the restore: someone else was touched", now, others)
	}
	people2 := 0
	for i, id := range ids {
		c, _, _ := h.verifyCertificate(id.(string))
		if c.Reapply == nil || c.Reapply.System != "accounts" || c.Reapply.Part != i+1 || c.Reapply.Parts != 2 {
			t.Errorf("part %d's certificate: %+v", i+1, c.Reapply)
			continue
		}
		people2 += c.Reapply.People
	}
	if people2 != len(people) {
		t.Errorf("the parts' certificates name %d people, want %d", people2, len(people))
	}
	for _, i := range people {
		if found := piitest.FilesHolding(t, filepath.Join(h.dir, "orchestrator"), dataset.DemoEmail(i)); len(found) > 0 {
			t.Errorf("the orchestrator holds %s in clear in %v", dataset.DemoEmail(i), found)
		}
	}
}

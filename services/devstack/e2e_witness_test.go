package devstack

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/torchwood"

	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/witness"
)

// TestWitnessedCertificates: with a witness, a certificate is issued on a
// checkpoint the witness cosigned, and verifies with its cosignature;
// GET /log/checkpoint is the cosigned note. Then the log's history is
// rewritten (the orchestrator's store restored from an older copy, and
// the log grown again on that past): the witness refuses the new
// checkpoints as inconsistent with the history it cosigned, the
// orchestrator counts the refusal (LetheWitnessRefusedCheckpoint), and no
// certificate is issued on the rewritten log.
func TestWitnessedCertificates(t *testing.T) {
	dir := t.TempDir()
	withWitness := func(c *Config) { c.DataDir, c.Witness = dir, WitnessInProcess }
	h := start(t, withWitness)
	vkey, err := os.ReadFile(filepath.Join(dir, "witness", "witness.vkey"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := witness.NewVerifier(string(bytes.TrimSpace(vkey)))
	if err != nil {
		t.Fatal(err)
	}
	erase := func(h *harness, email string) string {
		t.Helper()
		code, out := h.call("POST", h.s.API+"/v1/requests", `{"type":"erasure","tenant":"demo","subject":{"email":"`+email+`"},"verified":true}`)
		if code != http.StatusAccepted {
			t.Fatalf("erasure = %d %v", code, out)
		}
		id := out["id"].(string)
		h.waitState(id, "fulfilled", "partially_retained")
		return id
	}
	certified := func(h *harness, id string) int {
		t.Helper()
		code := 0
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if code = h.status("GET", h.s.API+"/v1/requests/"+id+"/certificate"); code == http.StatusOK {
				break
			}
		}
		return code
	}

	first := erase(h, "person-0002@example.com")
	if code := certified(h, first); code != http.StatusOK {
		t.Fatalf("no certificate on a witnessed checkpoint: GET certificate = %d", code)
	}
	c, _, _ := h.verifyCertificate(first, "person-0002@example.com")
	cosigs, err := witness.Cosignatures([]*torchwood.CosignatureVerifier{v}, []byte(c.Log.Checkpoint))
	if err != nil || len(cosigs) != 1 {
		t.Fatalf("the certificate's checkpoint carries %d cosignatures of the witness (%v), want 1:\n%s", len(cosigs), err, c.Log.Checkpoint)
	}
	public := h.get(h.s.API + "/log/checkpoint")
	if cosigs, err := witness.Cosignatures([]*torchwood.CosignatureVerifier{v}, public); err != nil || len(cosigs) != 1 {
		t.Errorf("GET /log/checkpoint is not cosigned by the witness (%v):\n%s", err, public)
	}
	if _, err := proof.OpenCheckpoint(h.keys(), public); err != nil {
		t.Errorf("GET /log/checkpoint: %v", err)
	}

	// A copy of the store now; the log grows, witnessed; the copy is
	// put back: the log's history since is gone.
	backup := filepath.Join(t.TempDir(), "lethe.db")
	h.exec("orchestrator/lethe.db", `VACUUM INTO '`+backup+`'`)
	second := erase(h, "person-0003@example.com")
	if code := certified(h, second); code != http.StatusOK {
		t.Fatalf("second certificate: GET = %d", code)
	}
	h.stop()
	store := filepath.Join(dir, "orchestrator", "lethe.db")
	for _, f := range []string{store + "-wal", store + "-shm"} {
		os.Remove(f)
	}
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(store, b, 0o600); err != nil {
		t.Fatal(err)
	}

	h = start(t, withWitness)
	third := erase(h, "person-0004@example.com")
	erase(h, "person-0005@example.com")
	refused := 0.0
	for end := time.Now().Add(15 * time.Second); refused == 0 && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		refused = h.metric("lethe_orchestrator_witness_refusals_total", map[string]string{"witness": "local", "reason": "inconsistent"})
	}
	if refused == 0 {
		t.Fatal("the witness's refusal of the rewritten log was not counted as inconsistent")
	}
	if code := h.status("GET", h.s.API+"/v1/requests/"+third+"/certificate"); code == http.StatusOK {
		t.Error("a certificate was issued on the rewritten log")
	}
	if evidence, _ := os.ReadDir(filepath.Join(dir, "witness", "evidence")); len(evidence) == 0 {
		t.Error("the witness kept no evidence of the refused checkpoint")
	}
}

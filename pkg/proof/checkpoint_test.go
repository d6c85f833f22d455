package proof_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

const origin = "lethe.example/log"

// A checkpoint is a C2SP signed note that generic tooling opens with the
// orchestrator's note verifier key, and OpenCheckpoint reads back.
func TestCheckpointIsASignedNote(t *testing.T) {
	w := prooftest.NewWorld(t)
	for i := range 5 {
		w.Erase(t, fmt.Sprintf("req-%d", i), prooftest.Erasure{})
	}
	at := prooftest.KeysFrom.Add(48 * time.Hour)
	msg := w.Log.CheckpointAt(t, w.Orchestrator, origin, w.Log.Size(), at)
	vkey, err := proof.NoteVerifierKey(origin, w.Orchestrator.Key.Public)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		t.Fatalf("generic note tooling does not open the checkpoint: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if lines[0] != origin || lines[1] != fmt.Sprint(w.Log.Size()) || !strings.HasPrefix(lines[3], "time ") {
		t.Errorf("checkpoint text %q", n.Text)
	}
	th, err := proof.OpenCheckpoint(w.Keys, msg)
	if err != nil || th.Size != w.Log.Size() || th.Root != w.Log.Root(th.Size) || !th.Time.Equal(at) || th.KeyID != w.Orchestrator.Key.ID {
		t.Fatalf("OpenCheckpoint = %+v, %v", th, err)
	}
}

// A checkpoint changed, signed by another key, or out of its key's
// validity, is refused.
func TestCheckpointRefused(t *testing.T) {
	w := prooftest.NewWorld(t)
	w.Erase(t, "req-0", prooftest.Erasure{})
	at := prooftest.KeysFrom.Add(48 * time.Hour)
	good := w.Log.CheckpointAt(t, w.Orchestrator, origin, w.Log.Size(), at)
	for _, tt := range []struct {
		name string
		msg  []byte
		want string
	}{
		{"size changed", bytes.Replace(good, []byte("\n"+fmt.Sprint(w.Log.Size())+"\n"), []byte("\n999\n"), 1), "not signed by an orchestrator key"},
		{"origin changed", bytes.Replace(good, []byte(origin), []byte("other.example/log"), 1), "not signed by an orchestrator key"},
		{"signed by a connector", w.Log.CheckpointAt(t, w.Connectors["accounts"], origin, w.Log.Size(), at), "not signed by an orchestrator key"},
		{"before its key", w.Log.CheckpointAt(t, w.Orchestrator, origin, w.Log.Size(), prooftest.KeysFrom.Add(-time.Hour)), "not valid"},
		{"not a note", []byte("hello\n"), "not signed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := proof.OpenCheckpoint(w.Keys, tt.msg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenCheckpoint = %v, want an error saying %q", err, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "a b", "a+b", "two\nlines"} {
		if _, err := proof.SignCheckpoint(w.Orchestrator, bad, 1, w.Log.Root(1), at); err == nil {
			t.Errorf("a checkpoint was signed for origin %q", bad)
		}
	}
}

// A version 2 certificate whose checkpoint was replaced does not verify:
// by one of a smaller log, or one signed by a connector's key.
func TestCertificateCheckpointTampered(t *testing.T) {
	w := prooftest.NewWorld(t)
	w.Origin = origin
	r := w.Erase(t, "req-1", prooftest.Erasure{})
	size := w.Log.Size()
	for _, tt := range []struct {
		name   string
		change func(c *proof.Certificate)
		want   string
	}{
		{"of a smaller log", func(c *proof.Certificate) {
			c.Log.Checkpoint = string(w.Log.CheckpointAt(t, w.Orchestrator, origin, size-1, r.Completed))
		}, "is not in the log"},
		{"signed by a connector", func(c *proof.Certificate) {
			c.Log.Checkpoint = string(w.Log.CheckpointAt(t, w.Connectors["accounts"], origin, size, r.Completed))
		}, "not signed by an orchestrator key"},
		{"with a tree head too", func(c *proof.Certificate) {
			th := w.Log.HeadAt(w.Orchestrator, size, r.Completed)
			c.Log.TreeHead = &th
		}, "only that"},
		{"as version 1", func(c *proof.Certificate) { c.Version = 1 }, "only that"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := w.Certificate(t, r)
			tt.change(c)
			c.Sign(w.Orchestrator)
			if err := w.Verify(c); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Verify = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

package proof_test

import (
	"testing"
	"time"

	"github.com/lethe-dev/lethe/pkg/proof"
)

func TestNoticeSignature(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	orch, err := proof.LoadSigner(t.TempDir()+"/o.key", proof.RoleOrchestrator, now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := proof.LoadSigner(t.TempDir()+"/a.key", "accounts", now)
	if err != nil {
		t.Fatal(err)
	}
	ks := proof.KeySet{Keys: []proof.Key{orch.Key, other.Key}}
	body := []byte(`{"requestId":"req_1","reason":"many systems"}`)
	good := proof.SignNotice(orch, body)
	tests := []struct {
		name   string
		header string
		body   []byte
		ok     bool
	}{
		{"as signed", good, body, true},
		{"body changed", good, []byte(`{"requestId":"req_2","reason":"many systems"}`), false},
		{"signed by a connector's key", proof.SignNotice(other, body), body, false},
		{"no header", "", body, false},
		{"garbage", "key_id=x, signature=%%%", body, false},
		{"unknown key", "key_id=nope, " + good[len("key_id=")+len(orch.Key.ID)+2:], body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := proof.VerifyNotice(ks, tt.header, tt.body, now)
			if (err == nil) != tt.ok {
				t.Fatalf("VerifyNotice = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

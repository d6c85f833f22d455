package proof_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

func TestLoadOrCreateSignerIsStable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "keys", "accounts.key")
	first, err := proof.LoadOrCreateSigner(path, "accounts", prooftest.KeysFrom.Add(90*time.Minute+123*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	wantNotBefore := prooftest.KeysFrom.Add(90 * time.Minute) // to the second
	if !first.Key.NotBefore.Equal(wantNotBefore) {
		t.Errorf("not_before = %s, want %s", first.Key.NotBefore, wantNotBefore)
	}
	if first.Key.Role != proof.RoleConnector || first.Key.System != "accounts" || first.Key.NotAfter != nil {
		t.Errorf("key = %+v, want an open-ended connector key for accounts", first.Key)
	}
	if len(first.Key.Public) != ed25519.PublicKeySize {
		t.Errorf("public key of %d bytes", len(first.Key.Public))
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("private key mode %o, want 600", perm)
	}

	// A restart a week later: same key, same start of validity, in the
	// signer and in the public entry beside it.
	second, err := proof.LoadOrCreateSigner(path, "accounts", prooftest.KeysFrom.AddDate(0, 0, 7))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first.Key, second.Key) {
		t.Errorf("key changed across loads:\n first %+v\nsecond %+v", first.Key, second.Key)
	}
	pub, err := proof.ReadPublicKey(path + ".pub")
	if err != nil {
		t.Fatalf("ReadPublicKey: %v", err)
	}
	if !reflect.DeepEqual(pub, first.Key) {
		t.Errorf("public entry %+v, want %+v", pub, first.Key)
	}
	// Both loads hold the same private key: what the reloaded signer signs
	// verifies with the public entry written on first start.
	r := &lethev1.Receipt{RequestId: "req-1", TaskId: "req-1.accounts", System: "accounts", ConnectorTime: timestamppb.New(prooftest.KeysFrom.AddDate(0, 1, 0))}
	if err := proof.SignReceipt(second, r); err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyReceipt(proof.KeySet{Keys: []proof.Key{pub}}, r, r.GetConnectorTime().AsTime()); err != nil {
		t.Errorf("a receipt of the reloaded signer does not verify with the first public entry: %v", err)
	}
}

func TestLoadOrCreateSignerOwners(t *testing.T) {
	dir := t.TempDir()
	orch, err := proof.LoadOrCreateSigner(filepath.Join(dir, "orchestrator.key"), proof.RoleOrchestrator, prooftest.KeysFrom)
	if err != nil {
		t.Fatal(err)
	}
	if orch.Key.Role != proof.RoleOrchestrator || orch.Key.System != "" {
		t.Errorf("orchestrator key = %+v", orch.Key)
	}
	ids := map[string]string{orch.Key.ID: "orchestrator"}
	for _, owner := range []string{"accounts", "billing", "crm"} {
		s, err := proof.LoadOrCreateSigner(filepath.Join(dir, owner+".key"), owner, prooftest.KeysFrom)
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := ids[s.Key.ID]; dup {
			t.Errorf("%s has the key id of %s: %s", owner, prev, s.Key.ID)
		}
		ids[s.Key.ID] = owner
		if s.Key.ID != proof.KeyID(owner, s.Key.Public) {
			t.Errorf("key id %s, want %s", s.Key.ID, proof.KeyID(owner, s.Key.Public))
		}
	}
	// Two key pairs of one owner (a rotation) have different ids too.
	again, err := proof.LoadOrCreateSigner(filepath.Join(dir, "rotated", "accounts.key"), "accounts", prooftest.KeysFrom)
	if err != nil {
		t.Fatal(err)
	}
	if _, dup := ids[again.Key.ID]; dup {
		t.Errorf("a new key pair for accounts reuses key id %s", again.Key.ID)
	}
}

func TestLoadOrCreateSignerRejectsBadKeyFile(t *testing.T) {
	for name, content := range map[string]string{
		"not hex":    "this is not a key\n",
		"too short":  "00112233\n",
		"empty file": "",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.key")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := proof.LoadOrCreateSigner(path, "accounts", prooftest.KeysFrom); err == nil {
				t.Error("a bad key file was accepted")
			}
		})
	}
}

func TestReadPublicKeyRejectsBadEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.pub")
	if err := os.WriteFile(path, []byte(`{"key_id":"accounts-00","role":"connector","system":"accounts","public_key":"AAAA","not_before":"2026-01-01T00:00:00Z"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := proof.ReadPublicKey(path); err == nil {
		t.Error("a public entry with a 3-byte key was accepted")
	}
	if _, err := proof.ReadPublicKey(filepath.Join(t.TempDir(), "missing.pub")); err == nil {
		t.Error("a missing public entry was accepted")
	}
}

func TestKeySetValidate(t *testing.T) {
	s, _ := prooftest.NewSigner(t, "accounts", prooftest.KeysFrom)
	pub := s.Key.Public
	from := prooftest.KeysFrom
	later := from.Add(time.Hour)
	earlier := from.Add(-time.Hour)
	good := proof.Key{ID: "accounts-1", Role: proof.RoleConnector, System: "accounts", Public: pub, NotBefore: from}
	orch := proof.Key{ID: "orchestrator-1", Role: proof.RoleOrchestrator, Public: pub, NotBefore: from}
	with := func(f func(*proof.Key)) proof.Key { k := good; f(&k); return k }
	tests := []struct {
		name string
		keys []proof.Key
		ok   bool
	}{
		{"empty", nil, true},
		{"connector and orchestrator", []proof.Key{good, orch}, true},
		{"retired later", []proof.Key{with(func(k *proof.Key) { k.NotAfter = &later })}, true},
		{"short public key", []proof.Key{with(func(k *proof.Key) { k.Public = pub[:31] })}, false},
		{"no public key", []proof.Key{with(func(k *proof.Key) { k.Public = nil })}, false},
		{"unknown role", []proof.Key{with(func(k *proof.Key) { k.Role = "admin" })}, false},
		{"connector without system", []proof.Key{with(func(k *proof.Key) { k.System = "" })}, false},
		{"listed twice", []proof.Key{good, with(func(k *proof.Key) { k.System = "billing" })}, false},
		{"not_after equals not_before", []proof.Key{with(func(k *proof.Key) { k.NotAfter = &from })}, false},
		{"not_after before not_before", []proof.Key{with(func(k *proof.Key) { k.NotAfter = &earlier })}, false},
		{"one bad among good", []proof.Key{orch, good, with(func(k *proof.Key) { k.ID = "x"; k.Role = "" })}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := proof.KeySet{Keys: tt.keys}.Validate()
			if (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// withRetiredKey is w's keys and an older accounts key, in use from a year
// before them and retired at the given time: a rotation done.
func withRetiredKey(t *testing.T, w *prooftest.World, retired time.Time) (proof.KeySet, proof.Key) {
	t.Helper()
	s, _ := prooftest.NewSigner(t, "accounts", prooftest.KeysFrom.AddDate(-1, 0, 0))
	old := s.Key
	old.NotAfter = &retired
	ks := w.Keys
	ks.Add(old)
	return ks, old
}

func TestKeySetFileRoundTrip(t *testing.T) {
	ks, _ := withRetiredKey(t, prooftest.NewWorld(t), prooftest.KeysFrom.AddDate(0, 3, 0))
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := proof.WriteKeySet(path, ks); err != nil {
		t.Fatal(err)
	}
	got, err := proof.ReadKeySet(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ks) {
		t.Errorf("keys file round trip:\n got %+v\nwant %+v", got, ks)
	}
	for i := 1; i < len(got.Keys); i++ {
		if got.Keys[i-1].ID >= got.Keys[i].ID {
			t.Errorf("keys not sorted by id: %s before %s", got.Keys[i-1].ID, got.Keys[i].ID)
		}
	}

	empty, err := proof.ReadKeySet(filepath.Join(t.TempDir(), "missing.json"))
	if err != nil || len(empty.Keys) != 0 {
		t.Errorf("missing keys file = %+v, %v; want an empty set", empty, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"keys":[{"key_id":"a","role":"connector","system":"a","public_key":"AAAA","not_before":"2026-01-01T00:00:00Z"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := proof.ReadKeySet(bad); err == nil {
		t.Error("a keys file with an invalid key was accepted")
	}
}

func TestKeySetAddReplacesByID(t *testing.T) {
	s, _ := prooftest.NewSigner(t, "accounts", prooftest.KeysFrom)
	k := s.Key
	var ks proof.KeySet
	ks.Add(k)
	retired := prooftest.KeysFrom.AddDate(0, 1, 0)
	k.NotAfter = &retired
	ks.Add(k)
	if len(ks.Keys) != 1 {
		t.Fatalf("adding a key twice left %d keys", len(ks.Keys))
	}
	if ks.Keys[0].NotAfter == nil || !ks.Keys[0].NotAfter.Equal(retired) {
		t.Errorf("the second Add did not replace the key: %+v", ks.Keys[0])
	}

	// Adding to a copy (say, of the set a registry hands out) leaves the
	// original as it was.
	w := prooftest.NewWorld(t)
	before := slices.Clone(w.Keys.Keys)
	cp := w.Keys
	orch := w.Orchestrator.Key
	orch.NotAfter = &retired
	ads, _ := prooftest.NewSigner(t, "ads", prooftest.KeysFrom)
	cp.Add(orch, ads.Key)
	if !reflect.DeepEqual(w.Keys.Keys, before) {
		t.Errorf("adding to a copy changed the original set:\n got %+v\nwant %+v", w.Keys.Keys, before)
	}
	if len(cp.Keys) != len(before)+1 {
		t.Errorf("the copy has %d keys, want %d", len(cp.Keys), len(before)+1)
	}
}

func TestKeySetFor(t *testing.T) {
	w := prooftest.NewWorld(t)
	acc := w.Connectors["accounts"].Key
	retiredAt := prooftest.KeysFrom.AddDate(0, 6, 0)
	ks, old := withRetiredKey(t, w, retiredAt)
	inUse := prooftest.KeysFrom.AddDate(0, 1, 0)

	tests := []struct {
		name         string
		id           string
		role, system string
		at           time.Time
		want         error // nil: the key is returned
	}{
		{"connector key for its system", acc.ID, proof.RoleConnector, "accounts", inUse, nil},
		{"orchestrator key", w.Orchestrator.Key.ID, proof.RoleOrchestrator, "", inUse, nil},
		{"at not_before", acc.ID, proof.RoleConnector, "accounts", acc.NotBefore, nil},
		{"unknown key", "accounts-0000000000000000", proof.RoleConnector, "accounts", inUse, proof.ErrUnknownKey},
		{"empty key id", "", proof.RoleConnector, "accounts", inUse, proof.ErrUnknownKey},
		{"connector key for another system", acc.ID, proof.RoleConnector, "billing", inUse, proof.ErrWrongSystem},
		{"orchestrator key as connector key", w.Orchestrator.Key.ID, proof.RoleConnector, "accounts", inUse, proof.ErrWrongSystem},
		{"connector key as orchestrator key", acc.ID, proof.RoleOrchestrator, "", inUse, proof.ErrWrongSystem},
		{"before not_before", acc.ID, proof.RoleConnector, "accounts", acc.NotBefore.Add(-time.Second), proof.ErrKeyNotValid},
		{"retired key just before not_after", old.ID, proof.RoleConnector, "accounts", retiredAt.Add(-time.Nanosecond), nil},
		{"retired key at not_after", old.ID, proof.RoleConnector, "accounts", retiredAt, proof.ErrKeyNotValid},
		{"retired key after not_after", old.ID, proof.RoleConnector, "accounts", retiredAt.AddDate(0, 0, 1), proof.ErrKeyNotValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ks.For(tt.id, tt.role, tt.system, tt.at)
			if tt.want == nil {
				if err != nil || k.ID != tt.id {
					t.Errorf("For = %s, %v; want key %s", k.ID, err, tt.id)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("For = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestLoadSignerFromEnvironment(t *testing.T) {
	fileSigner, err := proof.LoadOrCreateSigner(filepath.Join(t.TempDir(), "signing.key"), "accounts", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	seed := "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60" // RFC 8032 test 1
	t.Setenv(proof.SigningKeyEnv, seed)
	dir := t.TempDir()
	s, err := proof.LoadSigner(filepath.Join(dir, "signing.key"), "accounts", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.Key.ID == fileSigner.Key.ID || s.Key.System != "accounts" || s.Key.Role != proof.RoleConnector {
		t.Fatalf("key from the environment: %+v", s.Key)
	}
	if got := fmt.Sprintf("%x", []byte(s.Key.Public)); got != "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" {
		t.Fatalf("public key %s is not RFC 8032's for that seed", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "signing.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a key file was written although the environment holds the key")
	}
	t.Setenv(proof.SigningKeyEnv, "not hex")
	if _, err := proof.LoadSigner(filepath.Join(dir, "signing.key"), "accounts", time.Now()); err == nil {
		t.Fatal("a malformed key in the environment was accepted")
	}
}

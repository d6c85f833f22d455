package proof

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// noticeDomain separates the signatures of notices to data subjects from
// every other signature of the orchestrator's key.
const noticeDomain = "notice"

// SignNotice signs a notice's body as the orchestrator does before POSTing
// it to a webhook, and returns the Lethe-Signature header's value:
// "key_id=<id>, signature=<base64 ed25519>".
func SignNotice(s *Signer, body []byte) string {
	return fmt.Sprintf("key_id=%s, signature=%s", s.Key.ID, base64.StdEncoding.EncodeToString(s.Sign(noticeDomain, body)))
}

// VerifyNotice checks a webhook's Lethe-Signature header against the body
// it came with, using the orchestrator keys of ks (GET /v1/keys) valid at
// at: a receiver knows the notice came from Lethe and was not changed.
func VerifyNotice(ks KeySet, header string, body []byte, at time.Time) error {
	var id, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "key_id":
			id = v
		case "signature":
			sig = v
		}
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if id == "" || err != nil {
		return errors.New("notice signature: malformed Lethe-Signature header")
	}
	k, err := ks.For(id, RoleOrchestrator, "", at)
	if err != nil {
		return fmt.Errorf("notice signature: %w", err)
	}
	return verify(k, noticeDomain, body, raw)
}

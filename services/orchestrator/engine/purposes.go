package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// ErrBadPurpose is a consent withdrawal or an objection naming a purpose
// the tenant has not, or one it cannot apply to.
var ErrBadPurpose = errors.New("bad purpose")

// purposeScope resolves the purposes of a consent withdrawal or an
// objection into the data categories each system erases: the purposes
// are the tenant's retention policies. Consent can be withdrawn only
// from a purpose based on it (Art. 7(3)); an objection (Art. 21) applies
// to one based on a legitimate or public interest, not to a contract or
// a legal obligation.
func (e *Engine) purposeScope(nr NewRequest) (*proof.PurposeScope, error) {
	if e.cfg.Policies == nil || len(e.cfg.Policies.List) == 0 {
		return nil, fmt.Errorf("%w: no purposes are configured (the orchestrator's --policies file names them)", ErrBadPurpose)
	}
	systems := map[string][]string{}
	for _, name := range nr.Purposes {
		p := e.cfg.Policies.Of(nr.Tenant, name)
		switch {
		case p == nil:
			return nil, fmt.Errorf("%w: %q is no purpose of tenant %s (GET /v1/policies lists them)", ErrBadPurpose, name, nr.Tenant)
		case nr.Type == lifecycle.ConsentWithdrawal && !p.Consent:
			return nil, fmt.Errorf("%w: purpose %q is not based on consent (%s): there is no consent to withdraw; object to it instead (type objection)", ErrBadPurpose, name, p.LegalBasis)
		case nr.Type == lifecycle.Objection && p.Consent:
			return nil, fmt.Errorf("%w: purpose %q is based on consent: withdraw it instead (type consent_withdrawal)", ErrBadPurpose, name)
		case nr.Type == lifecycle.Objection && !objectable(p.LegalBasis):
			return nil, fmt.Errorf("%w: purpose %q rests on %s: an objection (Art. 21) applies to a legitimate or public interest only", ErrBadPurpose, name, p.LegalBasis)
		}
		for sys, cats := range p.Systems {
			for _, c := range cats {
				if !slices.Contains(systems[sys], c) {
					systems[sys] = append(systems[sys], c)
				}
			}
		}
	}
	for _, cats := range systems {
		slices.Sort(cats)
	}
	purposes := slices.Clone(nr.Purposes)
	slices.Sort(purposes)
	return &proof.PurposeScope{Purposes: slices.Compact(purposes), Systems: systems}, nil
}

// objectable reports whether a legal basis is one a person may object
// to: a legitimate interest (Art. 6(1)(f)) or a public task (6(1)(e)).
func objectable(basis string) bool {
	b := strings.ToLower(basis)
	return strings.Contains(b, "legitimate interest") || strings.Contains(b, "public interest") ||
		strings.Contains(b, "6(1)(f)") || strings.Contains(b, "6(1)(e)")
}

// PurposesOf reads what a consent withdrawal or an objection covers; nil
// for another request.
func PurposesOf(r *store.Request) (*proof.PurposeScope, error) {
	if !r.Type.ByPurpose() {
		return nil, nil
	}
	var s proof.PurposeScope
	if err := json.Unmarshal([]byte(r.Scope), &s); err != nil {
		return nil, fmt.Errorf("request %s: purposes: %w", r.ID, err)
	}
	return &s, nil
}

// scopeSystems are the systems a request's tasks go to: every registered
// one, or those its purposes name.
func scopeSystems(all []string, s *proof.PurposeScope) []string {
	if s == nil {
		return all
	}
	return slices.Sorted(maps.Keys(s.Systems))
}

// Package auth says who is calling the API and what they may do: opaque
// bearer tokens kept as hashes in the store, or OpenID Connect ID tokens
// from an organisation's identity provider, each mapped to a [Principal]
// with a role and a tenant.
package auth

import (
	"context"
	"errors"
	"strings"
)

// Role is what a principal may do.
type Role string

// Roles, from most to least powerful.
const (
	// Admin acts on every tenant, manages tokens and keys.
	Admin Role = "admin"
	// DPO does everything on its tenant's requests: submit, verify, deny,
	// extend, read, download exports and certificates.
	DPO Role = "dpo"
	// Intake submits requests for its tenant and reads the state of those
	// it submitted: the back end of a customer-facing form.
	Intake Role = "intake"
	// Auditor reads its tenant's requests, certificates, the log and the
	// keys, and changes nothing.
	Auditor Role = "auditor"
)

// Roles are the roles, most powerful first.
func Roles() []Role { return []Role{Admin, DPO, Intake, Auditor} }

// Known reports whether r is a role.
func (r Role) Known() bool {
	for _, k := range Roles() {
		if r == k {
			return true
		}
	}
	return false
}

// Kinds of principal.
const (
	KindToken = "token" // an opaque bearer token
	KindOIDC  = "oidc"  // an ID token of the identity provider
)

// AnyTenant is the tenant of an admin: every one.
const AnyTenant = "*"

// Principal is who is calling.
type Principal struct {
	Kind string
	// ID is the token's id or the OIDC subject ("issuer#subject"); Name is
	// the token's name or the ID token's name claim. Neither is personal
	// data of a data subject; an operator's name is the operator's.
	ID, Name string
	Role     Role
	// Tenant is the tenant the principal acts for; AnyTenant for an admin.
	Tenant string
}

// Sees reports whether the principal may see the tenant's requests.
func (p Principal) Sees(tenant string) bool {
	return p.Role == Admin || p.Tenant == AnyTenant || p.Tenant == tenant
}

// Errors of authentication. Their messages are safe to show the caller.
var (
	ErrNoCredentials = errors.New("a bearer token is required (Authorization: Bearer ...)")
	ErrInvalid       = errors.New("the bearer token is not valid")
)

// Authenticator turns a bearer token into a principal; ErrInvalid (or an
// error wrapping it) for a token it does not accept.
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (Principal, error)
}

// Chain tries opaque tokens first (they carry TokenPrefix), then OIDC (a
// JWT) when an issuer is configured.
type Chain struct {
	Tokens Authenticator
	OIDC   Authenticator // nil: no single sign-on
}

// Authenticate implements [Authenticator].
func (c Chain) Authenticate(ctx context.Context, bearer string) (Principal, error) {
	switch {
	case bearer == "":
		return Principal{}, ErrNoCredentials
	case strings.HasPrefix(bearer, TokenPrefix):
		return c.Tokens.Authenticate(ctx, bearer)
	case c.OIDC != nil:
		return c.OIDC.Authenticate(ctx, bearer)
	}
	return Principal{}, ErrInvalid
}

// Bearer reads the token of an Authorization header ("" for none).
func Bearer(header string) string {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

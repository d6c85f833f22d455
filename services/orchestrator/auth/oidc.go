package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Defaults of [OIDCConfig].
const (
	DefaultTenantClaim = "lethe_tenant"
	DefaultRoleClaim   = "lethe_role"
	DefaultNameClaim   = "name"
)

// maxIDToken bounds the size of a bearer token the verifier will parse.
const maxIDToken = 64 << 10

// OIDCConfig configures single sign-on with an organisation's identity
// provider.
type OIDCConfig struct {
	// Issuer is the identity provider's issuer URL, exactly as its discovery
	// document and its ID tokens spell it.
	Issuer string
	// Audience is the client ID the ID tokens must be issued to.
	Audience string
	// TenantClaim and RoleClaim name the claims that carry the principal's
	// tenant and role; DefaultTenantClaim and DefaultRoleClaim when empty.
	TenantClaim, RoleClaim string
	// NameClaim names the claim shown as the principal's name;
	// DefaultNameClaim when empty. Without it the name is the subject: the
	// verifier never falls back to an e-mail address.
	NameClaim string
	// HTTPClient fetches the discovery document and the key set; a client
	// with a 10 s timeout when nil.
	HTTPClient *http.Client
	// Now is the clock that judges expiry; time.Now when nil.
	Now func() time.Time
}

// OIDC authenticates the ID tokens of an identity provider. It implements
// [Authenticator] and is safe for concurrent use.
type OIDC struct {
	issuer                            string
	tenantClaim, roleClaim, nameClaim string
	verifier                          *oidc.IDTokenVerifier
}

// NewOIDC discovers the issuer (its /.well-known/openid-configuration) and
// returns an authenticator of its ID tokens for cfg.Audience. The key set
// is fetched when first needed and again when a token names a key it does
// not hold.
func NewOIDC(ctx context.Context, cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("auth: OIDC needs an issuer")
	}
	if cfg.Audience == "" {
		return nil, errors.New("auth: OIDC needs an audience (the client ID)")
	}
	o := &OIDC{
		issuer:      cfg.Issuer,
		tenantClaim: orDefault(cfg.TenantClaim, DefaultTenantClaim),
		roleClaim:   orDefault(cfg.RoleClaim, DefaultRoleClaim),
		nameClaim:   orDefault(cfg.NameClaim, DefaultNameClaim),
	}
	client := cfg.HTTPClient
	if client == nil {
		// Not http.DefaultClient: the key set is fetched in the background
		// and a fetch that never ends would hold up every later one.
		client = &http.Client{Timeout: 10 * time.Second}
	}
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("auth: OIDC discovery of %s: %w", cfg.Issuer, err)
	}
	o.verifier = provider.Verifier(&oidc.Config{ClientID: cfg.Audience, Now: cfg.Now})
	return o, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// invalid is an error of authentication that wraps ErrInvalid.
func invalid(why string) error { return fmt.Errorf("%w: %s", ErrInvalid, why) }

// Authenticate implements [Authenticator]: it verifies the ID token's
// signature against the issuer's key set, its issuer, audience, expiry
// and not-before, then maps its claims to a principal. Every refusal wraps
// ErrInvalid and says what is wrong, never echoing the token or a claim.
func (o *OIDC) Authenticate(ctx context.Context, bearer string) (Principal, error) {
	if bearer == "" {
		return Principal{}, ErrNoCredentials
	}
	if len(bearer) > maxIDToken {
		return Principal{}, invalid("the ID token is too large")
	}
	tok, err := o.verifier.Verify(ctx, bearer)
	if err != nil {
		return Principal{}, verifyError(ctx, err)
	}
	if tok.Subject == "" {
		return Principal{}, invalid("the ID token has no subject")
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, invalid("the ID token's claims are malformed")
	}

	roleName, ok := claim(claims, o.roleClaim)
	if !ok {
		return Principal{}, invalid("the ID token has no role claim")
	}
	role := Role(roleName)
	if !role.Known() {
		return Principal{}, invalid("the ID token's role claim names no role of Lethe")
	}

	tenant := AnyTenant
	if role != Admin {
		tenant, ok = claim(claims, o.tenantClaim)
		switch {
		case !ok || tenant == "":
			return Principal{}, invalid("the ID token has no tenant claim")
		case tenant == AnyTenant:
			// Only an admin acts for every tenant.
			return Principal{}, invalid("the ID token's tenant claim names no tenant")
		}
	}

	name, _ := claim(claims, o.nameClaim)
	if name == "" {
		name = tok.Subject
	}
	return Principal{
		Kind:   KindOIDC,
		ID:     o.issuer + "#" + tok.Subject,
		Name:   name,
		Role:   role,
		Tenant: tenant,
	}, nil
}

// claim returns a claim's value and whether the token has it (not null);
// the value is "" when it is not a string.
func claim(claims map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := claims[name]
	if !ok || string(raw) == "null" {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true
	}
	return s, true
}

// verifyError turns an error of go-oidc, whose messages quote the token's
// issuer and audience, into one that is safe to show the caller. go-oidc
// types only the expiry error; the others are told apart by their text,
// and an unrecognised one gets the generic message.
func verifyError(ctx context.Context, err error) error {
	var expired *oidc.TokenExpiredError
	if errors.As(err, &expired) {
		return invalid("the ID token has expired")
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unexpected signature algorithm"):
		return invalid("the ID token is signed with an algorithm that is not accepted")
	case strings.HasPrefix(msg, "oidc: malformed jwt"):
		return invalid("the bearer token is not a well-formed ID token")
	case strings.Contains(msg, "fetching keys"):
		if ctx.Err() != nil {
			return invalid("the ID token could not be verified in time")
		}
		return invalid("the identity provider's keys could not be fetched")
	case strings.HasPrefix(msg, "failed to verify signature"):
		return invalid("the ID token's signature does not verify")
	case strings.HasPrefix(msg, "oidc: id token issued by a different provider"):
		return invalid("the ID token is from another issuer")
	case strings.HasPrefix(msg, "oidc: expected audience"):
		return invalid("the ID token is for another audience")
	case strings.Contains(msg, "(not before)"):
		return invalid("the ID token is not valid yet")
	}
	return invalid("the ID token could not be verified")
}

package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lethe-dev/lethe/services/orchestrator/store"
)

// TokenPrefix starts every opaque token, so that a leaked one is
// recognisable (secret scanners) and told apart from an OIDC JWT.
const TokenPrefix = "lethe_"

// TokenStore keeps tokens; store.Store is one.
type TokenStore interface {
	InsertToken(ctx context.Context, t *store.Token) error
	TokenByHash(ctx context.Context, hash []byte) (*store.Token, error)
	Tokens(ctx context.Context) ([]*store.Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time) error
	TouchToken(ctx context.Context, id string, at time.Time) error
}

// Tokens issues opaque bearer tokens and authenticates them: 256 random
// bits, shown once, kept only as their SHA-256.
type Tokens struct {
	Store TokenStore
	Now   func() time.Time

	mu      sync.Mutex
	touched map[string]time.Time // when each token's last use was written
}

// touchEvery bounds how often a token's last use is written: a busy
// client must not turn every call into a write.
const touchEvery = time.Minute

// Hash is what the store keeps of a token.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func newSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func newID() string {
	var b [8]byte
	rand.Read(b[:])
	return "tok_" + hex.EncodeToString(b[:])
}

// Create issues a token and returns it with its secret, which is shown
// this once. An admin's tenant is AnyTenant.
func (t *Tokens) Create(ctx context.Context, name, tenant string, role Role, expires time.Time) (*store.Token, string, error) {
	secret, err := newSecret()
	if err != nil {
		return nil, "", err
	}
	return t.insert(ctx, name, tenant, role, expires, secret)
}

func (t *Tokens) insert(ctx context.Context, name, tenant string, role Role, expires time.Time, secret string) (*store.Token, string, error) {
	if role == Admin {
		tenant = AnyTenant
	}
	k := &store.Token{ID: newID(), Hash: Hash(secret), Name: name, Tenant: tenant, Role: string(role),
		CreatedAt: t.Now().UTC().Truncate(time.Millisecond), ExpiresAt: expires}
	if err := t.Store.InsertToken(ctx, k); err != nil {
		return nil, "", err
	}
	return k, secret, nil
}

// Authenticate implements [Authenticator]: a token that is known, not
// revoked and not expired.
func (t *Tokens) Authenticate(ctx context.Context, bearer string) (Principal, error) {
	k, err := t.Store.TokenByHash(ctx, Hash(bearer))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Principal{}, ErrInvalid
	case err != nil:
		return Principal{}, fmt.Errorf("read token: %w", err)
	}
	now := t.Now()
	switch {
	case !k.RevokedAt.IsZero():
		return Principal{}, fmt.Errorf("the token was revoked: %w", ErrInvalid)
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return Principal{}, fmt.Errorf("the token has expired: %w", ErrInvalid)
	}
	return Principal{Kind: KindToken, ID: k.ID, Name: k.Name, Role: Role(k.Role), Tenant: k.Tenant}, nil
}

// Used records that a token was used for a call it was allowed to make,
// at most once per touchEvery; a failure to write it costs the caller
// nothing. (A refused call changes nothing, not even this.)
func (t *Tokens) Used(ctx context.Context, p Principal) {
	if p.Kind != KindToken {
		return
	}
	id, now := p.ID, t.Now()
	t.mu.Lock()
	if t.touched == nil {
		t.touched = map[string]time.Time{}
	}
	last, seen := t.touched[id]
	due := !seen || now.Sub(last) >= touchEvery
	if due {
		t.touched[id] = now
	}
	t.mu.Unlock()
	if due {
		t.Store.TouchToken(context.WithoutCancel(ctx), id, now)
	}
}

// BootstrapName is the name of the admin token an orchestrator makes, or
// takes from a file, at its first start.
const BootstrapName = "bootstrap"

// Bootstrap makes sure there is a way in: the token in the file at path is
// registered as an admin token (once; a revoked one stays revoked), and
// when there is no file and no admin token that still works, one is
// created and written there, readable by its owner alone. It returns
// whether it wrote the file.
func (t *Tokens) Bootstrap(ctx context.Context, path string) (bool, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		secret := strings.TrimSpace(string(b))
		if !strings.HasPrefix(secret, TokenPrefix) || len(secret) < len(TokenPrefix)+32 {
			return false, fmt.Errorf("admin token file %s: not a token of Lethe (%s followed by at least 32 characters)", path, TokenPrefix)
		}
		if _, err := t.Store.TokenByHash(ctx, Hash(secret)); err == nil {
			return false, nil // registered before (and perhaps revoked since)
		} else if !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		_, _, err := t.insert(ctx, BootstrapName, AnyTenant, Admin, time.Time{}, secret)
		return false, err
	case !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("admin token file: %w", err)
	}
	all, err := t.Store.Tokens(ctx)
	if err != nil {
		return false, err
	}
	now := t.Now()
	for _, k := range all {
		if Role(k.Role) == Admin && k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt)) {
			return false, nil // there is a way in already
		}
	}
	_, secret, err := t.Create(ctx, BootstrapName, AnyTenant, Admin, time.Time{})
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, err
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("admin token file: %w", err)
	}
	return true, nil
}

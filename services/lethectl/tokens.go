package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

// tokenRoles are the roles a token may have, least powerful last: admin
// (every tenant, tokens and keys), dpo (everything on its tenant's
// requests), intake (submit, and read what it submitted), auditor (read
// only).
var tokenRoles = []string{"admin", "dpo", "intake", "auditor"}

var tokensCommand = command{
	name:    "tokens",
	args:    "create | list | revoke",
	summary: "the orchestrator's API tokens (admin only): create one (shown once), list them, revoke one at once",
	run:     group(tokensCreateCommand, tokensListCommand, tokensRevokeCommand),
}

var tokensCreateCommand = command{
	name:    "tokens create",
	args:    "--tenant T --role " + strings.Join(tokenRoles, "|") + " --name N [--expires 90d|12h|2027-01-01T00:00:00Z]",
	summary: "make a token; prints its id, then the token itself, which is shown this once",
	run:     runTokensCreate,
}

var tokensListCommand = command{
	name:    "tokens list",
	args:    "[--json]",
	summary: "list the tokens (never their secrets): id, name, tenant, role, created, last used, expiry, revocation",
	run:     runTokensList,
}

var tokensRevokeCommand = command{
	name:    "tokens revoke",
	args:    "ID",
	summary: "revoke a token at once: its next call is refused (401)",
	run:     runTokensRevoke,
}

func runTokensCreate(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	tenant := fs.String("tenant", "", "the tenant the token acts for (required, but for an admin, which acts for every tenant)")
	role := fs.String("role", "", "what it may do: "+oneOf(tokenRoles)+"; the least that does the job (required)")
	name := fs.String("name", "", "who or what holds it, e.g. privacy-team or web-form: 1-64 printable characters (required)")
	expires := fs.String("expires", "", "when it stops working: after a duration (90d, 12h) or at an RFC 3339 time (default: never)")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	nt := api.NewToken{Name: strings.TrimSpace(*name), Tenant: strings.TrimSpace(*tenant), Role: *role}
	switch {
	case nt.Role == "":
		return a.usageError(c, fs, "--role is required ("+oneOf(tokenRoles)+")")
	case !slices.Contains(tokenRoles, nt.Role):
		return a.usageError(c, fs, fmt.Sprintf("--role must be %s, not %q", oneOf(tokenRoles), nt.Role))
	case nt.Tenant == "" && nt.Role != "admin":
		return a.usageError(c, fs, "--tenant is required: a "+nt.Role+" token acts for one tenant")
	case !validTokenName(nt.Name):
		return a.usageError(c, fs, "--name is required: 1-64 printable characters saying who or what holds the token")
	}
	at, err := parseExpiry(*expires, a.now())
	if err != nil {
		return a.usageError(c, fs, err.Error())
	}
	if !at.IsZero() {
		nt.ExpiresAt = at.Format(time.RFC3339)
	}
	if nt.Role == "admin" && nt.Tenant != "" {
		fmt.Fprintln(a.stderr, "note: an admin token acts for every tenant: --tenant does not bind it")
	}
	tok, err := a.client().CreateToken(ctx, nt)
	if err != nil {
		return a.fail(c, err)
	}
	if tok.Secret == "" {
		return a.fail(c, errors.New("the orchestrator's reply holds no token"))
	}
	// The id first, alone, for scripts; then the token on its own line.
	fmt.Fprintln(a.stdout, tok.ID)
	fmt.Fprintln(a.stdout, string(tok.Secret))
	expiry := "never expires (give --expires for one that does)"
	if !tok.ExpiresAt.IsZero() {
		expiry = "expires " + when(tok.ExpiresAt)
	}
	fmt.Fprintf(a.stderr, "token %s: %s, tenant %s, named %s; %s\n", tok.ID, tok.Role, tok.Tenant, tok.Name, expiry)
	fmt.Fprintln(a.stderr, "The token (the second line) is shown this once: store it now, in its holder's secret store or password manager.")
	fmt.Fprintln(a.stderr, "The orchestrator keeps only its hash: a lost token is replaced, never recovered. Pass it as "+envToken+", not --token.")
	return exitOK
}

// validTokenName is the orchestrator's rule for a token's name.
func validTokenName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// parseExpiry reads --expires: "" (never), a positive duration from now in
// days ("90d") or as Go writes durations ("12h", "1h30m"), or an RFC 3339
// time in the future. The time is in UTC, to the second.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	bad := errors.New("--expires must be a duration (90d, 12h) or an RFC 3339 time (2027-01-01T00:00:00Z) in the future")
	var at time.Time
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100*366 {
			return time.Time{}, bad
		}
		at = now.AddDate(0, 0, n)
	} else if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, bad
		}
		at = now.Add(d)
	} else if t, err := time.Parse(time.RFC3339, s); err == nil {
		at = t
	} else {
		return time.Time{}, bad
	}
	at = at.UTC().Truncate(time.Second)
	if !at.After(now) {
		return time.Time{}, bad
	}
	return at, nil
}

func runTokensList(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	asJSON := fs.Bool("json", false, "print the server's reply as JSON")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	toks, raw, err := a.client().Tokens(ctx)
	if err != nil {
		return a.fail(c, err)
	}
	if *asJSON {
		if err := writeJSON(a.stdout, raw); err != nil {
			return a.fail(c, err)
		}
		return exitOK
	}
	if len(toks) == 0 {
		fmt.Fprintln(a.stdout, "no tokens")
		return exitOK
	}
	now := a.now()
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTENANT\tROLE\tCREATED\tLAST USED\tEXPIRES\tREVOKED")
	for _, k := range toks {
		expires := when(k.ExpiresAt)
		if !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(now) {
			expires += " (expired)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, dash(k.Tenant), k.Role,
			when(k.CreatedAt), when(k.LastUsedAt), expires, when(k.RevokedAt))
	}
	if err := tw.Flush(); err != nil {
		return a.fail(c, err)
	}
	return exitOK
}

func runTokensRevoke(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	if err := a.client().RevokeToken(ctx, pos[0]); err != nil {
		return a.fail(c, err)
	}
	fmt.Fprintf(a.stdout, "%s revoked: its next call is refused (401)\n", pos[0])
	return exitOK
}

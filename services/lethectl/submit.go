package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var submitCommand = command{
	name:    "submit",
	args:    "--type " + joined(lifecycle.Types(), "|") + " --email EMAIL [--user-id ID] [--purposes P1,P2] [--tenant demo] [--received-at RFC3339] [--verified] [--json]",
	summary: "file a data-subject request; prints its id, then its state and deadline",
	run:     runSubmit,
}

func runSubmit(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	var (
		req     api.NewRequest
		asJSON  bool
		tenant  = fs.String("tenant", "demo", "tenant (controller) the request belongs to")
		typ     = fs.String("type", "", "request type: "+oneOf(lifecycle.Types())+" (required)")
		email   = fs.String("email", "", "the subject's email address")
		userID  = fs.String("user-id", "", "the subject's user id in the tenant's systems")
		recvAt  = fs.String("received-at", "", "when the request was received, RFC 3339 (default: now); the deadline counts from it")
		checked = fs.Bool("verified", false, "the subject's identity is already checked: open the request at once")
		purp    = fs.String("purposes", "", "for a consent_withdrawal or an objection: the purposes it covers, comma-separated (lethectl sweep list names them)")
	)
	fs.BoolVar(&asJSON, "json", false, "print the server's reply as JSON")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}

	// Only what is obviously wrong is checked here; the server judges the
	// rest (email syntax, tenant, ...).
	switch typ := lifecycle.Type(*typ); {
	case slices.Contains(lifecycle.Types(), typ):
		req.Type = typ
	case typ == "":
		return a.usageError(c, fs, "--type is required ("+oneOf(lifecycle.Types())+")")
	default:
		return a.usageError(c, fs, fmt.Sprintf("--type must be %s, not %q", oneOf(lifecycle.Types()), typ))
	}
	req.Tenant = strings.TrimSpace(*tenant)
	if req.Tenant == "" {
		return a.usageError(c, fs, "--tenant must not be empty")
	}
	req.Subject = api.Subject{Email: strings.TrimSpace(*email), UserID: strings.TrimSpace(*userID)}
	if req.Subject.Email == "" && req.Subject.UserID == "" {
		return a.usageError(c, fs, "give --email or --user-id (or both)")
	}
	if err := checkReceivedAt(*recvAt); err != nil {
		return a.usageError(c, fs, err.Error())
	}
	req.ReceivedAt = *recvAt
	req.Verified = *checked
	for _, p := range strings.Split(*purp, ",") {
		if p = strings.TrimSpace(p); p != "" {
			req.Purposes = append(req.Purposes, p)
		}
	}
	if req.Type.ByPurpose() != (len(req.Purposes) > 0) {
		return a.usageError(c, fs, "--purposes go with --type consent_withdrawal or objection, and only with them")
	}

	acc, raw, err := a.client().Submit(ctx, req)
	if err != nil {
		return a.fail(c, err)
	}
	if asJSON {
		if err := writeJSON(a.stdout, raw); err != nil {
			return a.fail(c, err)
		}
		return exitOK
	}
	// The id alone on the first line, so `lethectl submit ... | head -1`
	// gives a script the id.
	fmt.Fprintln(a.stdout, acc.ID)
	fmt.Fprintf(a.stdout, "state %s, deadline %s\n", acc.State, deadlineCell(acc.Deadline, acc.State, api.Time{}, a.now()))
	if acc.State == lifecycle.PendingVerification {
		fmt.Fprintf(a.stderr, "check the subject's identity, then: lethectl confirm %s --method METHOD (or refuse the request: lethectl deny %s --reason REASON)\n", acc.ID, acc.ID)
	}
	return exitOK
}

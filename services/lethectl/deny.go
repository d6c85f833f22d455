package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var denyCommand = command{
	name:    "deny",
	args:    "ID --reason " + strings.Join(lifecycle.DenialGrounds, "|") + " [--note TEXT]",
	summary: "refuse a request pending verification (GDPR Art. 12(5), or the identity not established): it ends denied, no system is asked",
	run:     runDeny,
}

func runDeny(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	reason := fs.String("reason", "", "why the request is refused: "+oneOf(lifecycle.DenialGrounds)+" (required)")
	note := fs.String("note", "", noteHelp)
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	switch {
	case *reason == "":
		return a.usageError(c, fs, "--reason is required ("+oneOf(lifecycle.DenialGrounds)+")")
	case !slices.Contains(lifecycle.DenialGrounds, *reason):
		return a.usageError(c, fs, fmt.Sprintf("--reason must be %s, not %q", oneOf(lifecycle.DenialGrounds), *reason))
	}
	if msg := checkNote(*note); msg != "" {
		return a.usageError(c, fs, msg)
	}
	acc, err := a.client().Deny(ctx, pos[0], api.Denial{Reason: *reason, Note: strings.TrimSpace(*note)})
	if code := a.decided(c, pos[0], acc, err); code != exitOK {
		return code
	}
	// The subject's identifiers are gone with the refusal: telling the
	// person is the controller's to do.
	fmt.Fprintf(a.stderr, "tell the person, within a month of receipt, why the request was refused, and that they may lodge a complaint with a supervisory authority and seek a judicial remedy (GDPR Art. 12(4))\n")
	fmt.Fprintf(a.stderr, "the proof of the refusal: lethectl certificate %s\n", acc.ID)
	return exitOK
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

// noteHelp is what --note says of itself on confirm and deny.
var noteHelp = fmt.Sprintf("a line for the record; no personal data: it is kept as evidence in the certificate, hashed in the log, for good (at most %d bytes)", lifecycle.MaxNote)

// confirm, not verify: `lethectl verify` is kept for checking certificates.
var confirmCommand = command{
	name:    "confirm",
	args:    "ID [--method " + strings.Join(lifecycle.VerificationMethods, "|") + "] [--note TEXT]",
	summary: "record that the subject's identity was checked, and how, so the request opens and fans out",
	run:     runConfirm,
}

func runConfirm(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	method := fs.String("method", "other", "how the identity was checked: "+oneOf(lifecycle.VerificationMethods))
	note := fs.String("note", "", noteHelp)
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	if !slices.Contains(lifecycle.VerificationMethods, *method) {
		return a.usageError(c, fs, fmt.Sprintf("--method must be %s, not %q", oneOf(lifecycle.VerificationMethods), *method))
	}
	if msg := checkNote(*note); msg != "" {
		return a.usageError(c, fs, msg)
	}
	acc, err := a.client().Verify(ctx, pos[0], api.Verification{Method: *method, Note: strings.TrimSpace(*note)})
	return a.decided(c, pos[0], acc, err)
}

// decided prints the new state of a request a decision was made on, or
// why it was not (pointing to the request's state when it conflicts).
func (a *app) decided(c command, id string, acc api.Accepted, err error) int {
	if err != nil {
		code := a.fail(c, err)
		if api.IsStatus(err, http.StatusConflict) {
			fmt.Fprintf(a.stderr, "see its state with: lethectl status %s\n", id)
		}
		return code
	}
	fmt.Fprintf(a.stdout, "%s %s\n", acc.ID, acc.State)
	return exitOK
}

// checkNote is what is wrong with a note, "" when nothing is. The note is
// not echoed: it may hold what should not be there.
func checkNote(note string) string {
	if n := len(strings.TrimSpace(note)); n > lifecycle.MaxNote {
		return fmt.Sprintf("--note is %d bytes, more than %d: it is a line for the record, with no personal data", n, lifecycle.MaxNote)
	}
	return ""
}

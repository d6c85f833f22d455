package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

// confirm, not verify: `lethectl verify` is kept for checking certificates.
var confirmCommand = command{
	name:    "confirm",
	args:    "ID",
	summary: "record that the subject's identity was checked, so the request opens and fans out",
	run:     runConfirm,
}

func runConfirm(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	acc, err := a.client().Verify(ctx, pos[0])
	if err != nil {
		code := a.fail(c, err)
		if api.IsStatus(err, http.StatusConflict) {
			fmt.Fprintf(a.stderr, "see its state with: lethectl status %s\n", pos[0])
		}
		return code
	}
	fmt.Fprintf(a.stdout, "%s %s\n", acc.ID, acc.State)
	return exitOK
}

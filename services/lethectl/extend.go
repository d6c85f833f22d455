package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var extendCommand = command{
	name:    "extend",
	args:    "ID --reason TEXT",
	summary: "extend a request's deadline by two further months (GDPR Art. 12(3)); the person is told why",
	run:     runExtend,
}

func runExtend(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	reason := fs.String("reason", "", "why the request needs more time, in words for the person (required; no personal data: it is kept as proof)")
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	if strings.TrimSpace(*reason) == "" {
		fmt.Fprintf(a.stderr, "lethectl %s: --reason is required: the person must be told the reasons for the delay\n", c.name)
		return exitUsage
	}
	r, err := a.client().Extend(ctx, pos[0], *reason)
	if err != nil {
		code := a.fail(c, err)
		if api.IsStatus(err, http.StatusConflict) {
			fmt.Fprintf(a.stderr, "see the request with: lethectl status %s\n", pos[0])
		}
		return code
	}
	fmt.Fprintf(a.stdout, "%s deadline extended from %s to %s; the notice to the person is on its way\n",
		r.ID, when(r.OriginalDeadline), when(r.Deadline))
	return exitOK
}

package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var liftCommand = command{
	name:    "lift",
	args:    "ID --reason " + strings.Join(lifecycle.LiftReasons, "|"),
	summary: "lift a restriction of processing (GDPR Art. 18): every system removes its marks; tell the person first (Art. 18(3))",
	run:     runLift,
}

func runLift(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	reason := fs.String("reason", "", "why the restriction ends: "+oneOf(lifecycle.LiftReasons)+" (required)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up waiting after this long (exit 3); the lift goes on")
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	if *reason == "" {
		return a.usageError(c, fs, "--reason is required ("+oneOf(lifecycle.LiftReasons)+")")
	}
	client := a.client()
	id, err := client.Lift(ctx, pos[0], *reason)
	if err != nil {
		code := a.fail(c, err)
		if api.IsStatus(err, http.StatusConflict) {
			fmt.Fprintf(a.stderr, "see the restriction with: lethectl status %s\n", pos[0])
		}
		return code
	}
	fmt.Fprintf(a.stderr, "lift %s of restriction %s started, waiting for the systems\n", id, pos[0])
	waitCtx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	exit := a.awaitTasks(waitCtx, c, client, id, func(t api.Task) string {
		return fmt.Sprintf("system=%s lift=%s restriction=%s outcome=%s", t.System, id, pos[0], t.Outcome)
	})
	if exit == exitOK {
		fmt.Fprintf(a.stderr, "evidence: lethectl certificate %s (the lift), lethectl certificate %s (the restriction, now naming it)\n", id, pos[0])
	}
	return exit
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

var auditCommand = command{
	name:    "audit",
	args:    "log | tree-head | consistency",
	summary: "check the transparency log: read and check all of it, or keep a signed tree head now and check later that the log only grew",
	run:     group(auditLogCommand, auditTreeHeadCommand, auditConsistencyCommand),
}

var auditTreeHeadCommand = command{
	name:    "audit tree-head",
	args:    "[-o HEAD.json] [--keys KEYS.json]",
	summary: "save the log's current signed tree head as is, to check later that the log only grew",
	run:     runAuditTreeHead,
}

var auditConsistencyCommand = command{
	name:    "audit consistency",
	args:    "--old OLD_HEAD.json [--new NEW_HEAD.json] [--keys KEYS.json]",
	summary: "check that a newer signed tree head extends an older one, so nothing logged was changed or removed (exit 0 consistent, 1 not)",
	run:     runAuditConsistency,
}

func runAuditTreeHead(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	out := fs.String("o", "", "write the tree head to `FILE` (default: stdout)")
	keysPath := fs.String("keys", "", "check the tree head's signature with this keys `FILE` first")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	var ks proof.KeySet
	if *keysPath != "" {
		var err error
		if ks, err = readKeysFile(*keysPath); err != nil {
			return a.badInput(c, err)
		}
	}
	raw, err := a.client().TreeHead(ctx)
	if err != nil {
		return a.fail(c, err)
	}
	th, err := parseTreeHead("from the server", raw)
	if err != nil {
		return a.fail(c, err)
	}
	checked := ""
	if *keysPath != "" {
		if err := proof.VerifyTreeHead(ks, th); err != nil {
			return a.fail(c, err)
		}
		checked = ", signature checked"
	}
	// Saved as sent: it is the server's signed statement.
	if err := saveBytes(a.stdout, *out, 0o644, raw); err != nil {
		return a.fail(c, err)
	}
	fmt.Fprintf(a.stderr, "tree head: size %d, root %s, signed %s by %s%s\n", th.Size, th.Root, stamp(th.Time), th.KeyID, checked)
	return exitOK
}

func runAuditConsistency(ctx context.Context, a *app, c command, args []string) int {
	fs := a.newFlags(c)
	oldPath := fs.String("old", "", "the older signed tree head, a `FILE` saved with audit tree-head (required)")
	newPath := fs.String("new", "", "the newer signed tree head `FILE` (default: the server's current one)")
	keysPath := fs.String("keys", "", "check signatures with this keys `FILE` (default: the server's keys)")
	if _, code, ok := a.parse(c, fs, args, 0, 0); !ok {
		return code
	}
	if *oldPath == "" {
		return a.usageError(c, fs, "--old is required")
	}
	older, err := readTreeHead(*oldPath)
	if err != nil {
		return a.badInput(c, err)
	}
	var newer proof.TreeHead
	if *newPath != "" {
		if newer, err = readTreeHead(*newPath); err != nil {
			return a.badInput(c, err)
		}
	}
	client := a.client()
	ks, code, ok := a.auditKeys(ctx, c, client, *keysPath)
	if !ok {
		return code
	}
	if *newPath == "" {
		raw, err := client.TreeHead(ctx)
		if err != nil {
			return a.fail(c, err)
		}
		if newer, err = parseTreeHead("from the server", raw); err != nil {
			return a.fail(c, err)
		}
	}
	var problems []string
	for _, h := range []struct {
		name string
		th   proof.TreeHead
	}{{"old", older}, {"new", newer}} {
		fmt.Fprintf(a.stdout, "%s tree head: size %d, root %s, signed %s by %s\n", h.name, h.th.Size, h.th.Root, stamp(h.th.Time), h.th.KeyID)
		if err := proof.VerifyTreeHead(ks, h.th); err != nil {
			problems = append(problems, h.name+" "+err.Error())
		}
	}
	if err := checkGrowth(ctx, client, older, newer); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintln(a.stdout, "NOT CONSISTENT: the newer tree head does not prove that the log only grew:")
		for _, p := range problems {
			for _, line := range strings.Split(p, "\n") {
				fmt.Fprintf(a.stdout, "  - %s\n", line)
			}
		}
		return exitError
	}
	fmt.Fprintf(a.stdout, "CONSISTENT: the log of size %d extends the log of size %d: none of the %d entries the old tree head covers was changed or removed\n",
		newer.Size, older.Size, older.Size)
	return exitOK
}

// checkGrowth checks that newer's tree extends older's, asking the server
// for the consistency proof when one is needed.
func checkGrowth(ctx context.Context, client *api.Client, older, newer proof.TreeHead) error {
	switch {
	case older.Size == 0:
		return nil // every log extends the empty one
	case older.Size >= newer.Size:
		// Larger: CheckConsistency says so. Equal: the roots must be
		// equal, which the empty proof checks.
		return proof.CheckConsistency(older, newer, nil)
	}
	cons, err := client.Consistency(ctx, older.Size, newer.Size)
	if err != nil {
		return fmt.Errorf("no consistency proof from the server: %w", err)
	}
	if cons.Old != older.Size || cons.New != newer.Size {
		return fmt.Errorf("the server sent a proof for sizes %d to %d, not %d to %d", cons.Old, cons.New, older.Size, newer.Size)
	}
	return proof.CheckConsistency(older, newer, cons.Proof)
}

// readTreeHead reads a signed tree head saved with audit tree-head.
func readTreeHead(path string) (proof.TreeHead, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return proof.TreeHead{}, fmt.Errorf("tree head: %w", err)
	}
	return parseTreeHead(path, b)
}

func parseTreeHead(from string, b []byte) (proof.TreeHead, error) {
	var th proof.TreeHead
	if err := json.Unmarshal(b, &th); err != nil {
		return th, fmt.Errorf("tree head %s: %w", from, err)
	}
	if th.KeyID == "" || len(th.Signature) == 0 {
		return th, fmt.Errorf("tree head %s: not a signed tree head", from)
	}
	return th, nil
}

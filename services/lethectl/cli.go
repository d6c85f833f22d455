package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lethe-dev/lethe/pkg/envflag"
	"github.com/lethe-dev/lethe/services/lethectl/internal/api"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1 // an API or I/O error, or a request that failed or was refused
	exitUsage       = 2 // unknown command or flag, bad arguments
	exitTimeout     = 3 // wait gave up before the request finished
	exitInterrupted = 130
)

// Defaults and the environment variables that override them.
const (
	defaultAPI      = "http://127.0.0.1:8080"
	defaultAccounts = "http://127.0.0.1:8081"
	envAPI          = "LETHE_API"
	envAccounts     = "LETHE_ACCOUNTS_API"
	// envToken holds the bearer token for the orchestrator's API. It is the
	// way to pass one: unlike --token, it stays out of shell history and
	// ps output.
	envToken = "LETHE_TOKEN"
	// tokenFile is where `make run` writes the local admin token, relative
	// to the directory it runs in; lethectl reads it when neither --token
	// nor LETHE_TOKEN gives one.
	tokenFile = "data/admin.token"
)

// command is one subcommand. run gets the arguments after the command name
// and returns the exit code.
type command struct {
	name    string
	args    string // synopsis after the name, for usage
	summary string
	run     func(ctx context.Context, a *app, c command, args []string) int
}

// commands is filled in init because help refers back to it.
var commands []command

func init() {
	commands = []command{
		submitCommand,
		confirmCommand,
		denyCommand,
		extendCommand,
		retryCommand,
		resolveCommand,
		deadLettersCommand,
		deadlineCommand,
		statusCommand,
		listCommand,
		waitCommand,
		exportCommand,
		sweepCommand,
		reapplyCommand,
		liftCommand,
		certificateCommand,
		verifyCommand,
		keysCommand,
		auditCommand,
		tokensCommand,
		demoCommand,
		{name: "help", args: "[command]", summary: "show help for lethectl or a command", run: runHelp},
	}
}

func findCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// app is what every command shares: where to write, how to reach the APIs,
// and the clock.
type app struct {
	stdout, stderr io.Writer
	// tty says stdout is a terminal, so wait may redraw lines in place;
	// errTTY that stderr is, where progress bars go.
	tty         bool
	errTTY      bool
	apiURL      string
	accountsURL string
	// token is the orchestrator's bearer token and tokenFrom where it came
	// from (--token, LETHE_TOKEN, data/admin.token), for messages: the
	// token itself is never printed. bearer reads the file once, when
	// neither gave one.
	token, tokenFrom string
	tokenRead        bool
	tokenFileErr     error // why data/admin.token could not be read, if it exists
	now              func() time.Time
}

// client is a client of the orchestrator's API, with the bearer token.
func (a *app) client() *api.Client { return api.New(a.apiURL, a.bearer(), nil) }

// accounts is a client of the demo accounts system. It gets no token: the
// orchestrator's token (an admin's, often) is for the orchestrator alone.
func (a *app) accounts() *api.Accounts { return api.NewAccounts(a.accountsURL, "", nil) }

// bearer is the token to send: --token, else LETHE_TOKEN, else the file
// data/admin.token when it exists and can be read; "" for none.
func (a *app) bearer() string {
	if a.token != "" || a.tokenRead {
		return a.token
	}
	a.tokenRead = true
	f, err := os.Open(tokenFile)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			a.tokenFileErr = err
		}
		return ""
	}
	defer f.Close()
	// A token is some tens of bytes; a large file is not one.
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		a.tokenFileErr = err
		return ""
	}
	if tok := strings.TrimSpace(string(b)); tok != "" {
		a.token, a.tokenFrom = tok, tokenFile
	}
	return a.token
}

// tokenValue is --token: a flag.Value so that where the token came from is
// kept, and so that -h never shows a token as a default.
type tokenValue struct{ a *app }

func (v tokenValue) String() string { return "" }

func (v tokenValue) Set(s string) error {
	v.a.token, v.a.tokenFrom = strings.TrimSpace(s), "--token"
	if v.a.token == "" {
		v.a.tokenFrom = ""
	}
	return nil
}

// run is the whole CLI minus os.Exit, so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{
		stdout:      stdout,
		stderr:      stderr,
		tty:         isTerminal(stdout),
		errTTY:      isTerminal(stderr),
		apiURL:      envflag.Or(envAPI, defaultAPI),
		accountsURL: envflag.Or(envAccounts, defaultAccounts),
		now:         time.Now,
	}
	if tok := strings.TrimSpace(os.Getenv(envToken)); tok != "" {
		a.token, a.tokenFrom = tok, envToken
	}
	return a.dispatch(ctx, args)
}

func (a *app) dispatch(ctx context.Context, args []string) int {
	// Global flags come before the command; a command repeats the ones it
	// uses (--api and --token, or --accounts for demo) so they may follow
	// it too.
	fs := flag.NewFlagSet("lethectl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a.apiFlag(fs)
	a.tokenFlag(fs)
	a.accountsFlag(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(a.stdout)
			return exitOK
		}
		fmt.Fprintf(a.stderr, "lethectl: %v\n\n", err)
		printUsage(a.stderr)
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		printUsage(a.stderr)
		return exitUsage
	}
	c, ok := findCommand(rest[0])
	if !ok {
		fmt.Fprintf(a.stderr, "lethectl: unknown command %q\n\n", rest[0])
		printUsage(a.stderr)
		return exitUsage
	}
	return c.run(ctx, a, c, rest[1:])
}

// apiFlag registers --api on fs, defaulting to what is already set, so a
// flag given before the command holds unless repeated after it.
func (a *app) apiFlag(fs *flag.FlagSet) {
	fs.StringVar(&a.apiURL, "api", a.apiURL, "orchestrator API base `URL` (env "+envAPI+")")
}

// tokenFlag registers --token on fs, as apiFlag does --api.
func (a *app) tokenFlag(fs *flag.FlagSet) {
	fs.Var(tokenValue{a}, "token", "bearer `TOKEN` for the orchestrator API (default: env "+envToken+
		", else the file "+tokenFile+"); prefer "+envToken+": a flag shows in ps and shell history")
}

// accountsFlag registers --accounts on fs, as apiFlag does --api.
func (a *app) accountsFlag(fs *flag.FlagSet) {
	fs.StringVar(&a.accountsURL, "accounts", a.accountsURL, "demo accounts admin API base `URL` (env "+envAccounts+")")
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// newFlags makes a command's flag set with --api and --token; errors and
// usage are printed by parse, not by the flag package, so -h can go to
// stdout.
func (a *app) newFlags(c command) *flag.FlagSet {
	fs := bareFlags(c)
	a.apiFlag(fs)
	a.tokenFlag(fs)
	return fs
}

// bareFlags is a command's flag set without --api and --token, for
// commands that do not talk to the orchestrator.
func bareFlags(c command) *flag.FlagSet {
	fs := flag.NewFlagSet("lethectl "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses flags that may come before, between or after positional
// arguments (`status ID --json`), and checks the number of positional
// arguments against [minArgs, maxArgs] (maxArgs < 0: no limit). When it returns ok false
// the exit code is set: 0 after -h, 2 after a usage error.
func (a *app) parse(c command, fs *flag.FlagSet, args []string, minArgs, maxArgs int) (pos []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				commandUsage(a.stdout, c, fs)
				return nil, exitOK, false
			}
			return nil, a.usageError(c, fs, err.Error()), false
		}
		// The flag package stops at "--" after consuming it: what follows
		// is positional even if it starts with a dash.
		consumed := len(args) - len(fs.Args())
		dashdash := consumed > 0 && args[consumed-1] == "--"
		args = fs.Args()
		if dashdash {
			pos = append(pos, args...)
			break
		}
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	switch {
	case len(pos) < minArgs:
		return nil, a.usageError(c, fs, "missing argument"), false
	case maxArgs >= 0 && len(pos) > maxArgs:
		return nil, a.usageError(c, fs, "too many arguments"), false
	}
	return pos, exitOK, true
}

// usageError prints msg and the command's usage on stderr and returns 2.
func (a *app) usageError(c command, fs *flag.FlagSet, msg string) int {
	fmt.Fprintf(a.stderr, "lethectl %s: %s\n\n", c.name, msg)
	commandUsage(a.stderr, c, fs)
	return exitUsage
}

// fail prints an error of a command and returns 1. API errors carry the
// server's message; a refused token (401), a forbidden call (403) and a
// call over the rate limit (429) get a line on what to do.
func (a *app) fail(c command, err error) int {
	fmt.Fprintf(a.stderr, "lethectl %s: %v\n", c.name, err)
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		if hint := a.authHint(apiErr); hint != "" {
			fmt.Fprintf(a.stderr, "lethectl: %s\n", hint)
		}
	}
	return exitError
}

// authHint says what to do about a 401, 403 or 429 ("" for another
// status). It names where the token came from, never the token.
func (a *app) authHint(e *api.Error) string {
	switch e.StatusCode {
	case http.StatusUnauthorized:
		how := "pass a token with --token or " + envToken + ", or run lethectl from the directory of `make run` (it reads " + tokenFile + " there)"
		switch {
		case a.tokenFrom != "":
			return "the orchestrator did not accept the token from " + a.tokenFrom +
				" (unknown, expired or revoked: an admin can make a new one with lethectl tokens create): " + how
		case a.tokenFileErr != nil:
			return "no token was sent: " + tokenFile + " could not be read (" + a.tokenFileErr.Error() + "): " + how
		}
		return "no token was sent: " + how
	case http.StatusForbidden:
		return "the token is valid but may not do this: use a token of a role and tenant that may (an admin lists them with lethectl tokens list)"
	case http.StatusTooManyRequests:
		wait := "a moment"
		if e.RetryAfter > 0 {
			wait = e.RetryAfter.String()
		}
		return "too many calls with this token: slow down, and try again after " + wait + " (Retry-After)"
	}
	return ""
}

func commandUsage(w io.Writer, c command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: lethectl %s %s\n\n%s\n", c.name, c.args, upperFirst(c.summary)+".")
	if fs == nil {
		return
	}
	fmt.Fprintf(w, "\nflags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `lethectl files and follows data-subject requests (erasure, export) in Lethe,
and checks the proof that they were carried out.

usage: lethectl [--api URL] [--token TOKEN] [--accounts URL] <command> [flags] [args]

commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
environment:
  %-18s orchestrator API base URL (default %s)
  %-18s demo accounts admin API base URL (default %s)
  %-18s bearer token for the orchestrator API

authentication:
  Every call to the orchestrator carries a bearer token: --token, else %s,
  else the file %s in the current directory (make run writes it there).
  Prefer %s to --token: a flag shows in ps and shell history. lethectl
  never prints a token, but the one tokens create makes, that once.

Run 'lethectl <command> -h' for a command's flags.
`, envAPI, defaultAPI, envAccounts, defaultAccounts, envToken, envToken, tokenFile, envToken)
}

// group makes the run of a command whose first argument names one of subs
// (named "<group> <sub>", so errors and usage say "lethectl keys add").
func group(subs ...command) func(ctx context.Context, a *app, c command, args []string) int {
	return func(ctx context.Context, a *app, c command, args []string) int {
		if len(args) == 0 {
			return a.groupUsageError(c, subs, "missing subcommand")
		}
		for _, s := range subs {
			if s.name == c.name+" "+args[0] {
				return s.run(ctx, a, s, args[1:])
			}
		}
		switch args[0] {
		case "-h", "-help", "--help", "help":
			groupUsage(a.stdout, c, subs)
			return exitOK
		}
		return a.groupUsageError(c, subs, fmt.Sprintf("unknown subcommand %q", args[0]))
	}
}

func (a *app) groupUsageError(c command, subs []command, msg string) int {
	fmt.Fprintf(a.stderr, "lethectl %s: %s\n\n", c.name, msg)
	groupUsage(a.stderr, c, subs)
	return exitUsage
}

// groupUsage lists a group's subcommands; each one's -h shows its flags.
func groupUsage(w io.Writer, c command, subs []command) {
	for i, s := range subs {
		prefix := "usage: "
		if i > 0 {
			prefix = "       "
		}
		fmt.Fprintf(w, "%slethectl %s %s\n", prefix, s.name, s.args)
	}
	fmt.Fprintf(w, "\n%s.\n\n", upperFirst(c.summary))
	for _, s := range subs {
		fmt.Fprintf(w, "  %-20s %s\n", s.name, s.summary)
	}
	fmt.Fprintf(w, "\nRun 'lethectl %s <subcommand> -h' for its flags.\n", c.name)
}

func runHelp(ctx context.Context, a *app, _ command, args []string) int {
	if len(args) == 0 {
		printUsage(a.stdout)
		return exitOK
	}
	c, ok := findCommand(args[0])
	if !ok || c.name == "help" {
		if ok {
			printUsage(a.stdout)
			return exitOK
		}
		fmt.Fprintf(a.stderr, "lethectl help: unknown command %q\n\n", args[0])
		printUsage(a.stderr)
		return exitUsage
	}
	// A command's own -h knows its flags.
	return c.run(ctx, a, c, []string{"-h"})
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"filippo.io/torchwood"

	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/witness"
)

var verifyCommand = command{
	name:    "verify",
	args:    "CERT.json --keys KEYS.json [--witness VKEY]... [--witness-quorum N]",
	summary: "check a certificate of fulfilment offline with the public keys alone (exit 0 verified, 1 not, 2 unreadable input; to confirm a subject's identity, see confirm)",
	run:     runVerify,
}

func runVerify(_ context.Context, a *app, c command, args []string) int {
	// No --api: verify never touches the network. It trusts the keys file
	// it is given and nothing else.
	fs := bareFlags(c)
	keysPath := fs.String("keys", "", "the keys `FILE` saved earlier with lethectl keys export (required)")
	var witnesses []*torchwood.CosignatureVerifier
	fs.Func("witness", "require a cosignature of the certificate's checkpoint by the witness of this verifier `KEY` (its witness.vkey; repeat for more)", func(s string) error {
		v, err := witness.NewVerifier(strings.TrimSpace(s))
		witnesses = append(witnesses, v)
		return err
	})
	quorum := fs.Int("witness-quorum", 0, "how many of the --witness keys must have cosigned (default: all)")
	pos, code, ok := a.parse(c, fs, args, 1, 1)
	if !ok {
		return code
	}
	if *quorum < 0 || *quorum > len(witnesses) {
		return a.usageError(c, fs, fmt.Sprintf("--witness-quorum must be between 1 and the %d --witness keys given", len(witnesses)))
	}
	if *quorum == 0 {
		*quorum = witness.Quorum(witnesses)
	}
	if *keysPath == "" {
		return a.usageError(c, fs, "--keys is required: a certificate is checked against the public keys you saved, never against a server")
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return a.badInput(c, fmt.Errorf("certificate: %w", err))
	}
	ks, err := readKeysFile(*keysPath)
	if err != nil {
		return a.badInput(c, err)
	}
	cert, err := proof.Verify(data, ks)
	if err == nil && len(witnesses) > 0 {
		err = checkWitnessed(cert, witnesses, *quorum)
	}
	if err != nil {
		err = writeNotVerified(a.stdout, cert, err)
		if err != nil {
			fmt.Fprintf(a.stderr, "lethectl %s: %v\n", c.name, err)
		}
		return exitError
	}
	if err := writeVerified(a.stdout, cert); err != nil {
		return a.fail(c, err)
	}
	if len(witnesses) > 0 {
		fmt.Fprintf(a.stdout, "WITNESSED: the checkpoint the entries are proved in is cosigned by %d witness(es), of the %d key(s) given\n", *quorum, len(witnesses))
	}
	return exitOK
}

// checkWitnessed checks that quorum of the witnesses cosigned the
// certificate's checkpoint: the log the certificate's entries are in is
// the one they saw, not a view shown to this auditor alone.
func checkWitnessed(c *proof.Certificate, witnesses []*torchwood.CosignatureVerifier, quorum int) error {
	if c.Log.Checkpoint == "" {
		return fmt.Errorf("witnesses: the certificate (version %d) carries no checkpoint for witnesses to cosign", c.Version)
	}
	return witness.CheckWitnessed([]byte(c.Log.Checkpoint), witnesses, quorum)
}

// writeVerified prints a line per system (or why there is none), the
// decisions people made on the request, and the verdict.
func writeVerified(w io.Writer, cert *proof.Certificate) error {
	if len(cert.Systems) == 0 {
		// A request refused or expired before its identity was checked
		// sent no task out.
		line := refusedNote(cert.State)
		if line == "" {
			line = "no system was asked"
		}
		fmt.Fprintln(w, line)
	} else if err := writeSystems(w, cert.Systems); err != nil {
		return err
	}
	th := cert.SignedTreeHead()
	fmt.Fprintf(w, "\nsigned by %s; the request's %d log entries are in the transparency log of size %d (root %s, signed %s)\n",
		cert.KeyID, len(cert.Log.Entries), th.Size, th.Root, stamp(th.Time))

	for _, line := range scopeLines(cert) {
		fmt.Fprintln(w, line)
	}
	for _, line := range decisionLines(cert) {
		fmt.Fprintln(w, line)
	}
	for _, line := range deadlineLines(cert) {
		fmt.Fprintln(w, line)
	}

	dl := stamp(cert.Deadline)
	if x := cert.Extension; x != nil {
		if effective := cert.EffectiveDeadline(); effective.Equal(cert.Deadline) {
			dl += " (extended from " + stamp(x.OriginalDeadline) + ")"
		} else {
			dl = stamp(effective) + " (the extension to " + stamp(cert.Deadline) + " has no effect)"
		}
	}
	met := "deadline met"
	if !cert.DeadlineMet {
		met = "deadline MISSED by " + humanDuration(cert.RespondedAt().Sub(cert.EffectiveDeadline()))
	}
	// How it ended: carried out (completed), refused or expired.
	ended := "completed"
	switch cert.State {
	case lifecycle.Denied:
		ended = "refused"
	case lifecycle.Expired:
		ended = "expired"
	}
	completed := ended + " " + stamp(cert.CompletedAt)
	if cert.AnsweredAt != nil {
		completed = "answered " + stamp(*cert.AnsweredAt) + ", " + completed
	}
	_, err := fmt.Fprintf(w, "VERIFIED: request %s (%s, tenant %s), %s, received %s, deadline %s, %s, %s\n",
		cert.RequestID, cert.Type, cert.Tenant, cert.State, stamp(cert.ReceivedAt), dl, completed, met)
	return err
}

// scopeLines say what the request covered beyond a person, as the log's
// created entry recorded it: a retention run's policy and cut-off, the
// purposes of a consent withdrawal or an objection, a re-application's
// restored system, a lift's restriction; and the lift that ended a
// restriction.
func scopeLines(c *proof.Certificate) []string {
	var lines []string
	if s := c.Sweep; s != nil {
		run := "retention run"
		if s.DryRun {
			run = "retention dry run (nothing deleted)"
		}
		lines = append(lines, fmt.Sprintf("%s of policy %s: records whose %s clock is before %s", run, s.Policy, s.Clock, stamp(s.Cutoff)))
	}
	if p := c.Purposes; p != nil {
		lines = append(lines, "purposes: "+strings.Join(p.Purposes, ", ")+" (only their data erased, the person suppressed for them)")
	}
	if r := c.Reapply; r != nil {
		part := ""
		if r.Parts > 1 {
			part = fmt.Sprintf(" (part %d of %d)", r.Part, r.Parts)
		}
		lines = append(lines, fmt.Sprintf("re-application in %s of the erasures since %s%s: %d people, by keyed hash (sha256 %s)",
			r.System, stamp(r.Since), part, r.People, r.HashesSHA256))
	}
	if l := c.Lift; l != nil {
		if c.Type == lifecycle.Lift {
			lines = append(lines, fmt.Sprintf("lifts restriction %s (reason: %s)", l.Restriction, l.Reason))
		} else {
			lines = append(lines, fmt.Sprintf("restriction lifted by %s (reason: %s)", l.By, l.Reason))
		}
	} else if c.Type == lifecycle.Restriction {
		lines = append(lines, "restriction in place: the data is kept, marked not to be processed")
	}
	return lines
}

// writeSystems prints a line per system: its outcome, when its connector
// signed, what it counted, and the key that signed.
func writeSystems(w io.Writer, systems []proof.SystemResult) error {
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	// The note comes last: a legal basis may be long.
	fmt.Fprintln(tw, "SYSTEM\tOUTCOME\tAT (CONNECTOR TIME)\tRECORDS\tREMAINING\tKEY\tNOTE")
	for _, s := range systems {
		at := "-"
		if s.ConnectorTime != nil {
			at = stamp(*s.ConnectorTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n",
			s.System, s.Outcome, at, dash(counts(s.Counts)), s.Remaining, dash(s.KeyID), systemNote(s))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Rows without a note would end in the key column's padding.
	for _, line := range strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	return nil
}

// decisionLines are the decisions people made on the request, as the
// certificate records them and the log confirms: who checked the subject's
// identity and how, who refused the request and why; and, for a request
// that expired, the log's word on it.
//
//	identity checked 2026-03-02 09:00:10 UTC by token tok_ab12 (privacy-team, dpo): document
//	refused 2026-03-02 09:00:10 UTC by token tok_ab12 (privacy-team, dpo): identity_not_established
func decisionLines(cert *proof.Certificate) []string {
	var lines []string
	if d := cert.Verification; d != nil {
		lines = append(lines, "identity checked "+decisionLine(*d, d.Method))
	}
	if d := cert.Denial; d != nil {
		lines = append(lines, "refused "+decisionLine(*d, d.Ground))
	}
	if cert.State == lifecycle.Expired {
		for _, le := range cert.Log.Entries {
			e, err := proof.DecodeEntry(le.Entry)
			if err != nil || e.Event != proof.EventExpired {
				continue
			}
			line := "expired " + stamp(e.At)
			if e.Detail != "" {
				line += ": " + printable(e.Detail)
			}
			lines = append(lines, line)
		}
	}
	return lines
}

// decisionLine is "<time> by <actor>: <what>", and the note when there
// is one, quoted: it is free text.
func decisionLine(d proof.Decision, what string) string {
	line := stamp(d.At) + " by " + actorName(d.Actor) + ": " + dash(printable(what))
	if d.Note != "" {
		line += "; note: " + strconv.QuoteToGraphic(d.Note)
	}
	return line
}

// actorName is who decided: "token tok_ab12 (privacy-team, dpo)".
func actorName(a proof.Actor) string {
	s := strings.TrimSpace(printable(a.Kind) + " " + printable(a.ID))
	if s == "" {
		s = "someone unnamed"
	}
	var about []string
	for _, v := range []string{a.Name, a.Role} {
		if v != "" {
			about = append(about, printable(v))
		}
	}
	if len(about) > 0 {
		s += " (" + strings.Join(about, ", ") + ")"
	}
	return s
}

// printable replaces what is not printable (a newline, an escape
// sequence) in a value read from a certificate, so that it cannot forge
// a line of the verdict on a terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsGraphic(r) {
			return r
		}
		return '?'
	}, s)
}

// deadlineLines say what the verdict line cannot: the tenant's deadline
// policy when it is not the default, the extension of the deadline with its
// notice to the data subject, and data kept until a date, whose erasure
// was deferred.
func deadlineLines(cert *proof.Certificate) []string {
	var lines []string
	if p := cert.DeadlinePolicy; p != nil {
		zone := p.TimeZone
		if zone == "" {
			zone = "UTC"
		}
		line := "deadline policy: days counted in " + zone
		if p.RollToWorkingDay {
			line += ", a deadline on a Saturday, a Sunday or a public holiday moved to the next working day"
			if len(p.Holidays) > 0 {
				line += " (holidays: " + strings.Join(p.Holidays, ", ") + ")"
			}
		}
		// The deadline as the tenant's clock reads it: the end of a day
		// there, which UTC would hide.
		if loc, err := time.LoadLocation(zone); err == nil {
			line += "; the deadline is " + cert.EffectiveDeadline().In(loc).Format("2006-01-02 15:04:05 MST") + " there"
		}
		lines = append(lines, line)
	}
	if x := cert.Extension; x != nil {
		lines = append(lines, fmt.Sprintf("deadline extended on %s from %s to %s (Art. 12(3) GDPR), reason: %s",
			stamp(x.At), stamp(x.OriginalDeadline), stamp(cert.Deadline), x.Reason))
		switch n := x.NoticeDeliveredAt; {
		case n == nil:
			lines = append(lines, "notice of the extension to the data subject: not delivered when this certificate was issued: until it is, the extension has no effect")
		case n.After(x.OriginalDeadline):
			lines = append(lines, fmt.Sprintf("notice of the extension to the data subject: not delivered by the original deadline (delivered %s by %s): the extension has no effect",
				stamp(*n), strings.Join(x.NoticeChannels, ", ")))
		default:
			lines = append(lines, fmt.Sprintf("notice of the extension to the data subject: delivered %s by %s",
				stamp(*n), strings.Join(x.NoticeChannels, ", ")))
		}
	}
	switch {
	case cert.AnsweredAt != nil:
		line := "answered " + stamp(*cert.AnsweredAt) + " as " + string(lifecycle.PartiallyRetained)
		if kept := deferredErasures(cert); len(kept) > 0 {
			line += " (" + strings.Join(kept, "; ") + ")"
		}
		lines = append(lines, line+"; the deferred erasure then ran, and the request ended "+string(cert.State)+" "+stamp(cert.CompletedAt))
	case cert.State == lifecycle.PartiallyRetained:
		var kept []string
		for _, s := range cert.Systems {
			if s.Outcome == lifecycle.Retained && s.RetainUntil != nil {
				kept = append(kept, s.System+" keeps data until "+s.RetainUntil.UTC().Format(dateLayout))
			}
		}
		lines = append(lines, "partially retained: "+strings.Join(kept, "; ")+"; that data is to be erased then, and a new certificate issued")
	}
	return lines
}

// deferredErasures are the log's erasure_deferred entries: which system
// kept data until when, before the deferred erasure ran.
func deferredErasures(cert *proof.Certificate) []string {
	var out []string
	for _, le := range cert.Log.Entries {
		e, err := proof.DecodeEntry(le.Entry)
		if err != nil || e.Event != proof.EventErasureDeferred || e.RetainUntil == nil {
			continue
		}
		out = append(out, e.System+" kept data until "+e.RetainUntil.UTC().Format(dateLayout))
	}
	return out
}

// systemNote is what a system's line says beyond its outcome: why data was
// kept and until when, or why a system failed.
func systemNote(s proof.SystemResult) string {
	var notes []string
	if s.LegalBasis != "" {
		notes = append(notes, "legal basis: "+s.LegalBasis)
	}
	if s.RetainUntil != nil {
		notes = append(notes, "kept until "+s.RetainUntil.UTC().Format(dateLayout))
	}
	if s.Detail != "" {
		notes = append(notes, s.Detail)
	}
	return strings.Join(notes, "; ")
}

// writeNotVerified prints every problem found, one a line. What the
// certificate claims is not repeated: none of it can be relied on.
func writeNotVerified(w io.Writer, cert *proof.Certificate, err error) error {
	what := "this file"
	if cert != nil && cert.RequestID != "" {
		what = fmt.Sprintf("the certificate (claiming to be of request %s)", oneLine(cert.RequestID))
	}
	fmt.Fprintf(w, "NOT VERIFIED: %s cannot be relied on:\n", what)
	problems := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		problems = joined.Unwrap()
	}
	for _, p := range problems {
		if _, err := fmt.Fprintf(w, "  - %s\n", oneLine(p.Error())); err != nil {
			return err
		}
	}
	return nil
}

// oneLine keeps a problem to one line: a message may quote the
// certificate, which could otherwise add lines (or hide text behind
// control characters) in the verdict of its choosing.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return '?'
		}
		return r
	}, s)
}

package vectors

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/lethe-dev/lethe/pkg/deadline"
	lethev1 "github.com/lethe-dev/lethe/pkg/gen/lethe/v1"
	"github.com/lethe-dev/lethe/pkg/lifecycle"
	"github.com/lethe-dev/lethe/pkg/proof"
	"github.com/lethe-dev/lethe/pkg/proof/prooftest"
)

// systems are the systems of the vectors' keys file.
var systems = []string{"accounts", "billing", "crm", "emailanalytics", "recordings"}

// The people who decide, as the API records them (an operator of the
// controller, never a data subject).
var (
	dpo = proof.Actor{Kind: "token", ID: "tok_7f3a", Name: "privacy-team", Role: "dpo"}
	// Its name has a character that the canonical JSON escapes (&), in
	// the log's entries as in the certificate.
	intake = proof.Actor{Kind: "oidc", ID: "auth0|64f1c2", Name: "Intake & triage desk", Role: "intake"}
)

func at(year int, month time.Month, day, hour, min, sec, ms int) time.Time {
	return time.Date(year, month, day, hour, min, sec, ms*int(time.Millisecond), time.UTC)
}

// gen makes the vectors.
type gen struct {
	tb    testing.TB
	files map[string][]byte
	keys  map[string]proof.KeySet // by keys file
	index []Vector
}

// base is a valid vector, which invalid variants are made from.
type base struct {
	file, keys string
	w          *prooftest.World
	c          *proof.Certificate
}

// encode is a certificate as it is served: its encoding and a newline.
func encode(c *proof.Certificate) []byte { return append(c.Encode(), '\n') }

func (g *gen) keysFile(name string, ks proof.KeySet) {
	if err := ks.Validate(); err != nil {
		g.tb.Fatalf("%s: %v", name, err)
	}
	b, err := json.MarshalIndent(ks, "", "  ") // as proof.WriteKeySet writes it
	if err != nil {
		g.tb.Fatal(err)
	}
	g.files[name] = append(b, '\n')
	g.keys[name] = ks
}

func (g *gen) add(v Vector, data []byte) {
	if _, ok := g.files[v.File]; ok {
		g.tb.Fatalf("%s made twice", v.File)
	}
	g.files[v.File] = data
	g.index = append(g.index, v)
}

// valid adds a valid vector.
func (g *gen) valid(name, keys string, w *prooftest.World, c *proof.Certificate, description string) base {
	file := "valid/" + name + ".json"
	g.add(Vector{File: file, Keys: keys, Valid: true, Description: description}, encode(c))
	return base{file: file, keys: keys, w: w, c: prooftest.Clone(g.tb, c)}
}

// invalid adds an invalid vector of its own (not a variant).
func (g *gen) invalid(name, keys, want string, data []byte, description string) {
	g.add(Vector{File: "invalid/" + name + ".json", Keys: keys, Error: want, Description: description}, data)
}

// bytes adds a variant of b made of other bytes.
func (g *gen) bytes(b base, name, want string, data []byte, description string) {
	g.add(Vector{File: "invalid/" + name + ".json", Keys: b.keys, Error: want, Description: description, From: b.file}, data)
}

// changed adds a variant of b changed after it was signed.
func (g *gen) changed(b base, name, want string, change func(*proof.Certificate), description string) {
	c := prooftest.Clone(g.tb, b.c)
	change(c)
	g.bytes(b, name, want, encode(c), description)
}

// resigned adds a variant of b changed, then signed again by the
// orchestrator's key: only the check it targets can catch it.
func (g *gen) resigned(b base, name, want string, change func(*proof.Certificate), description string) {
	c := prooftest.Clone(g.tb, b.c)
	change(c)
	c.Sign(b.w.Orchestrator)
	g.bytes(b, name, want, encode(c), description)
}

// variant adds a certificate made as b's is, by a World told to lie or
// to go otherwise (its log then agrees with it).
func (g *gen) variant(b base, name, want string, c *proof.Certificate, description string) {
	g.bytes(b, name, want, encode(c), description)
}

// world is a World with the vectors' keys (seed), a log of its own named
// Origin, which already holds another request's entries: a vector's
// entries are not the first of its log.
func (g *gen) world(seed string, systems ...string) *prooftest.World {
	w := prooftest.NewSeededWorld(g.tb, seed, systems...)
	w.Origin = Origin
	w.Erase(g.tb, "req_neighbour", prooftest.Erasure{
		Received: at(2026, 1, 20, 8, 0, 0, 0),
		Source:   "account_deleted",
		Answers: []prooftest.Answer{
			{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED},
			{System: "crm", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND},
		},
	})
	return w
}

// lastAt is when the last of answers came: the request ends then, as the
// orchestrator ends it when its last system answers.
func lastAt(answers []prooftest.Answer) time.Time {
	var last time.Time
	for _, a := range answers {
		if a.At.After(last) {
			last = a.At
		}
	}
	return last
}

func counts(kv ...any) []*lethev1.CategoryCount {
	var out []*lethev1.CategoryCount
	for i := 0; i < len(kv); i += 2 {
		out = append(out, &lethev1.CategoryCount{Category: kv[i].(string), Count: int64(kv[i+1].(int))})
	}
	return out
}

func digest(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// system is c's result of a system.
func system(tb testing.TB, c *proof.Certificate, name string) *proof.SystemResult {
	for i := range c.Systems {
		if c.Systems[i].System == name {
			return &c.Systems[i]
		}
	}
	tb.Fatalf("%s: no system %s", c.RequestID, name)
	return nil
}

// entryIndex is the position in c's log entries of the first entry whose
// encoding has all of parts.
func entryIndex(tb testing.TB, c *proof.Certificate, parts ...string) int {
	for i, le := range c.Log.Entries {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(string(le.Entry), p) }) {
			return i
		}
	}
	tb.Fatalf("%s: no entry with %q", c.RequestID, parts)
	return 0
}

func (g *gen) build() {
	w := g.world(Seed, systems...)
	g.keysFile(KeysFile, w.Keys)

	erasure := g.erasure()
	g.retained()
	g.export()
	failed := g.failed()
	g.late()
	g.extension()
	g.paris()
	g.rotation()
	g.sweep()
	g.purposes()
	g.restriction()
	g.reapply()
	g.refused()
	v1 := g.version1()

	g.form(erasure, v1)
	g.signatures(erasure)
	g.logs(erasure)
	g.receipts(erasure)
	g.state(failed)
}

// erasureAnswers are the plain erasure's answers: accounts erased,
// crm held nothing, emailanalytics erased.
func erasureAnswers() []prooftest.Answer {
	return []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 2, 10, 9, 31, 42, 250)},
		{System: "crm", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND, At: at(2026, 2, 10, 9, 31, 43, 0)},
		{System: "emailanalytics", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 2, 10, 9, 32, 7, 19),
			Receipt: &lethev1.Receipt{Counts: counts("navigation", 240, "prospecting", 3)}},
	}
}

// plainErasure is the plain erasure request, answers changed by change.
func plainErasure(change func([]prooftest.Answer)) prooftest.Erasure {
	answers := erasureAnswers()
	if change != nil {
		change(answers)
	}
	return prooftest.Erasure{
		Received: at(2026, 2, 10, 9, 30, 0, 0),
		Source:   "api",
		By:       &intake,
		// A note with characters the canonical JSON escapes (&) and
		// others it keeps as they are (é, —).
		Verification: &proof.Decision{At: at(2026, 2, 10, 9, 31, 5, 0), Actor: dpo, Method: "email_code",
			Note: "code confirmed & session matched — vérifié"},
		Answers:   answers,
		Completed: lastAt(answers),
	}
}

func (g *gen) erasure() base {
	w := g.world(Seed, systems...)
	r := w.Erase(g.tb, "req_erasure", plainErasure(nil))
	b := g.valid("erasure-fulfilled", KeysFile, w, w.Certificate(g.tb, r),
		"An erasure submitted through the API, its identity checked by a person (the verification, with a note whose & the canonical JSON escapes as \\u0026), "+
			"erased in accounts and emailanalytics, nothing held in crm: fulfilled, on time. Some times have milliseconds.")

	// A receipt signed by a key the keys file does not have, which the
	// log accepted all the same.
	stranger := prooftest.SeededSigner(g.tb, Seed+" unregistered", "accounts", prooftest.KeysFrom)
	w2 := g.world(Seed, systems...)
	r2 := w2.Erase(g.tb, "req_erasure", plainErasure(func(a []prooftest.Answer) { a[0].Signer = stranger }))
	g.variant(b, "receipt-unknown-key", "accounts: receipt: key not in the keys file", w2.Certificate(g.tb, r2),
		"accounts' receipt is signed by a key that is not in the keys file (the log accepted it all the same).")

	// crm's receipt signed by accounts' key.
	w3 := g.world(Seed, systems...)
	r3 := w3.Erase(g.tb, "req_erasure", plainErasure(func(a []prooftest.Answer) { a[1].Signer = w3.Connectors["accounts"] }))
	g.variant(b, "receipt-another-systems-key", "crm: receipt: key not registered for this system", w3.Certificate(g.tb, r3),
		"crm's receipt is signed by accounts' key, a key of the keys file, but not one registered for crm.")
	return b
}

func (g *gen) retained() {
	w := g.world(Seed, systems...)
	answers := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 2, 12, 14, 0, 31, 0)},
		{System: "billing", Outcome: lethev1.Outcome_OUTCOME_RETAINED, At: at(2026, 2, 12, 14, 0, 48, 500)},
		{System: "crm", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND, At: at(2026, 2, 12, 14, 1, 2, 0)},
	}
	r := w.Erase(g.tb, "req_retained", prooftest.Erasure{
		Received:  at(2026, 2, 12, 14, 0, 0, 0),
		Source:    "account_deleted", // verified by the account's own deletion: no person decided
		Answers:   answers,
		Completed: lastAt(answers),
	})
	first := g.valid("retained-partially-retained", KeysFile, w, w.Certificate(g.tb, r),
		"An erasure opened by an account's deletion (verified by the event, no person): billing retains invoices by law until 2036-12-31, "+
			"so the request is answered but partially_retained, with billing's erasure deferred (erasure_deferred).")
	w.FollowUp(g.tb, r, prooftest.FollowUp{Completed: at(2036, 12, 31, 0, 1, 0, 0)})
	final := g.valid("retained-fulfilled", KeysFile, w, w.Certificate(g.tb, r),
		"The same request after the deferred erasure ran on 2036-12-31 (billing's second attempt erased the invoices): fulfilled, "+
			"answered_at the first answer, by which the deadline is judged. Its log holds the first certificate's entries and more.")

	g.resigned(first, "retained-claimed-fulfilled", `state "fulfilled" does not follow from the systems' answers ("partially_retained")`,
		func(c *proof.Certificate) {
			c.State = lifecycle.Fulfilled
		},
		"The partially_retained certificate claims fulfilled while billing retains data until a date (also contradicting the log's end).")
	g.resigned(final, "answered-at-changed", "answered_at is 2026-02-12T13:01:02Z, but the log first answered the request at 2026-02-12T14:01:02Z",
		func(c *proof.Certificate) {
			a := c.AnsweredAt.Add(-time.Hour)
			c.AnsweredAt = &a
		},
		"answered_at an hour earlier than the log's first answer (partially_retained entry), signed again.")
}

func (g *gen) export() {
	w := g.world(Seed, systems...)
	const id = "req_export"
	accounts := &lethev1.Receipt{
		Counts:           counts("account", 1, "connection", 3),
		ExportRef:        id + "/accounts/records.json",
		ExportSha256:     digest("the records document of accounts"),
		ExportSize:       2311,
		ExportCategories: []string{"account", "connection"},
	}
	recordings := &lethev1.Receipt{
		Counts:           counts("contributions", 1, "recordings", 1),
		ExportRef:        id + "/recordings/records.json",
		ExportSha256:     digest("the records document of recordings"),
		ExportSize:       418,
		ExportCategories: []string{"contributions", "recordings"},
		ExportFiles: []*lethev1.ExportFile{{Ref: id + "/recordings/files/0", Name: "Webinar 1.mp4", Category: "recordings",
			ContentType: "video/mp4", Size: 3 << 20, Sha256: digest("the webinar's video")}},
	}
	answers := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_EXPORTED, Receipt: accounts, At: at(2026, 3, 2, 10, 1, 12, 0)},
		{System: "billing", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND, At: at(2026, 3, 2, 10, 1, 13, 0)},
		{System: "recordings", Outcome: lethev1.Outcome_OUTCOME_EXPORTED, Receipt: recordings, At: at(2026, 3, 2, 10, 4, 40, 0)},
	}
	r := w.Erase(g.tb, id, prooftest.Erasure{
		Type:         lifecycle.Export,
		Received:     at(2026, 3, 2, 10, 0, 0, 0),
		Source:       "api",
		By:           &intake,
		Verification: &proof.Decision{At: at(2026, 3, 2, 10, 0, 40, 0), Actor: intake, Method: "account_session"},
		Answers:      answers,
		Completed:    lastAt(answers),
	})
	b := g.valid("export-fulfilled", KeysFile, w, w.Certificate(g.tb, r),
		"An export (ACTION_EXPORT): accounts and recordings exported (receipts with export_ref, export_sha256, export_size, export_categories, "+
			"and a file), billing held nothing. The log's export_assembled entry and export_manifest_sha256 are the SHA-256 of the bundle's "+
			"manifest.json, which is valid/export-fulfilled.manifest.json.")
	g.files["valid/export-fulfilled.manifest.json"] = r.Manifest

	g.resigned(b, "export-manifest-changed", "the certificate's export manifest digest",
		func(c *proof.Certificate) {
			c.ExportManifestSHA256 = hex.EncodeToString(digest("another manifest"))
		},
		"export_manifest_sha256 is not the digest the log's export_assembled entry recorded, signed again.")
}

// failedAnswers: accounts erased; billing never answered (six attempts);
// crm answered failed, not to be tried again, which the orchestrator
// dead-letters without logging the receipt.
func failedAnswers() []prooftest.Answer {
	return []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 2, 16, 8, 0, 41, 0)},
		{System: "billing", DeadLetter: true, Attempts: 6},
		{System: "crm", DeadLetter: true, Attempts: 1, Detail: "failed: permission denied", At: at(2026, 2, 16, 8, 0, 52, 0)},
	}
}

func (g *gen) failed() base {
	failed := func(state lifecycle.State) (*prooftest.World, *prooftest.Request) {
		w := g.world(Seed, systems...)
		return w, w.Erase(g.tb, "req_failed", prooftest.Erasure{
			Received: at(2026, 2, 16, 8, 0, 0, 0),
			Source:   "account_deleted",
			Answers:  failedAnswers(),
			// billing's attempts were sent from 08:00:30, each waiting
			// twice as long as the one before; its sixth, sent at 08:16,
			// went unanswered for 16 minutes.
			Completed: at(2026, 2, 16, 8, 32, 0, 0),
			State:     state,
		})
	}
	w, r := failed("")
	b := g.valid("failed-dead-letter", KeysFile, w, w.Certificate(g.tb, r),
		"A failed erasure: billing never answered its six attempts (task_published 1 to 6, then dead_letter) and crm answered failed, "+
			"not to be retried, which the orchestrator dead-letters too, logging no receipt. Both are dead_letter, without a receipt, with a detail.")
	w2, r2 := failed(lifecycle.Fulfilled)
	g.variant(b, "state-fulfilled-with-dead-letters", `state "fulfilled" does not follow from the systems' answers ("failed")`,
		w2.Certificate(g.tb, r2),
		"The same request shown fulfilled, and logged so (its log ends fulfilled), while two systems never answered.")
	return b
}

func (g *gen) late() {
	w := g.world(Seed, systems...)
	answers := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 3, 2, 9, 16, 3, 0)},
		{System: "crm", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 3, 2, 9, 17, 30, 0),
			Receipt: &lethev1.Receipt{Counts: counts("contacts", 1, "notes", 4)}},
	}
	r := w.Erase(g.tb, "req_late", prooftest.Erasure{
		Received:     at(2026, 1, 28, 11, 0, 0, 0), // by post
		Created:      at(2026, 2, 26, 16, 0, 0, 0), // entered four weeks later
		Source:       "api",
		By:           &intake,
		Verification: &proof.Decision{At: at(2026, 3, 2, 9, 15, 0, 0), Actor: dpo, Method: "document", Note: "passport checked"},
		Answers:      answers,
		Completed:    lastAt(answers),
	})
	b := g.valid("late", KeysFile, w, w.Certificate(g.tb, r),
		"An erasure received by post on 2026-01-28 and entered on 2026-02-26: the deadline (2026-02-28T23:59:59Z) counts from receipt, "+
			"and the request ended on 2026-03-02, late: deadline_met false.")
	g.resigned(b, "deadline-met-wrong", "deadline_met is true, but completion 2026-03-02T09:17:30Z against deadline 2026-02-28T23:59:59Z says false",
		func(c *proof.Certificate) { c.DeadlineMet = true },
		"The late request claims deadline_met true, signed again.")
	g.resigned(b, "deadline-changed", "deadline 2026-03-03T23:59:59Z is not one month after receipt (2026-02-28T23:59:59Z)",
		func(c *proof.Certificate) {
			c.Deadline = time.Date(2026, 3, 3, 23, 59, 59, 0, time.UTC)
			c.DeadlineMet = true
		},
		"The late request's deadline moved three days on, past its end, and deadline_met made true to match, signed again.")
}

// extended is the extended request, the extension changed by change.
func (g *gen) extended(change func(*prooftest.Extend)) (*prooftest.World, *prooftest.Request) {
	w := g.world(Seed, systems...)
	x := &prooftest.Extend{
		At:     at(2026, 2, 20, 10, 0, 0, 0),
		By:     &dpo,
		Reason: "Your request covers recordings held by a processor, who needs more time to find them.",
		Notices: []prooftest.Notice{
			{At: at(2026, 2, 20, 10, 4, 0, 0), Channel: proof.ChannelBus}, // a mailer acknowledged it
			{At: at(2026, 2, 20, 10, 0, 1, 500), Channel: proof.ChannelWebhook},
		},
	}
	if change != nil {
		change(x)
	}
	answers := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 2, 3, 13, 1, 0, 0)},
		{System: "recordings", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 3, 25, 12, 0, 0, 0),
			Receipt: &lethev1.Receipt{Counts: counts("contributions", 7, "recordings", 2)}},
	}
	return w, w.Erase(g.tb, "req_extended", prooftest.Erasure{
		Received:     at(2026, 2, 3, 13, 0, 0, 0),
		Source:       "api",
		By:           &intake,
		Verification: &proof.Decision{At: at(2026, 2, 3, 13, 0, 30, 0), Actor: intake, Method: "email_code"},
		Extend:       x,
		Answers:      answers,
		Completed:    lastAt(answers),
	})
}

func (g *gen) extension() base {
	w, r := g.extended(nil)
	b := g.valid("extension-notice-delivered", KeysFile, w, w.Certificate(g.tb, r),
		"An erasure whose deadline a person extended (Art. 12(3)) by two further months, to 2026-05-03T23:59:59Z, with a reason; the notice "+
			"reached the person on the webhook then the bus (notice_delivered entries), within the first month. Answered on 2026-03-25, "+
			"after the original deadline, before the extended one: deadline_met true.")
	w2, r2 := g.extended(func(x *prooftest.Extend) { x.Deadline = time.Date(2026, 5, 4, 23, 59, 59, 0, time.UTC) })
	g.variant(b, "extension-not-two-months", "extended deadline 2026-05-04T23:59:59Z is not the two further months the law allows (2026-05-03T23:59:59Z)",
		w2.Certificate(g.tb, r2),
		"The extension gives a day more than two further months, in the certificate and in the log's extended entry alike.")
	g.resigned(b, "extension-notice-hidden", "extension: the notice's delivery (never on []) is not what the log's notice_delivered entries say",
		func(c *proof.Certificate) {
			c.Extension.NoticeDeliveredAt, c.Extension.NoticeChannels = nil, nil
			c.DeadlineMet = !c.RespondedAt().After(c.EffectiveDeadline())
		},
		"The notice's deliveries left out of the extension (as if the person was never told, which leaves the extension without effect), "+
			"deadline_met made to match, signed again.")
	g.resigned(b, "extension-reason-changed", "extension: the reason is not the one the log recorded (its hash differs)",
		func(c *proof.Certificate) { c.Extension.Reason = "We were busy." },
		"The extension's reason is not the one whose hash the log's extended entry holds, signed again.")
	return b
}

func (g *gen) paris() {
	w := g.world(Seed, systems...)
	// French public holidays of 2026; the request keeps those that can
	// move its deadlines.
	france := &deadline.Spec{TimeZone: "Europe/Paris", RollToWorkingDay: true, Holidays: []string{
		"2026-01-01", "2026-04-06", "2026-05-01", "2026-05-08", "2026-05-14", "2026-05-25",
		"2026-07-14", "2026-08-15", "2026-11-01", "2026-11-11", "2026-12-25",
	}}
	answers := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 4, 1, 8, 1, 0, 0)},
		{System: "crm", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 5, 3, 10, 0, 0, 0),
			Receipt: &lethev1.Receipt{Counts: counts("contacts", 1)}},
	}
	r := w.Erase(g.tb, "req_paris", prooftest.Erasure{
		Received:     at(2026, 4, 1, 8, 0, 0, 0),
		Source:       "api",
		By:           &intake,
		Verification: submitterVerified(intake),
		Policy:       france,
		Answers:      answers,
		Completed:    lastAt(answers),
	})
	b := g.valid("deadline-policy-paris", KeysFile, w, w.Certificate(g.tb, r),
		"A tenant that counts in Europe/Paris and rolls to the next working day: received 2026-04-01, the deadline falls on Friday 1 May, "+
			"a holiday, and rolls to Monday 4 May, 23:59:59 in Paris (2026-05-04T21:59:59Z). Answered on Sunday 3 May: on time, though late "+
			"by the default policy (UTC, no roll). deadline_policy keeps the holidays that can move the deadline or its extension.")
	g.resigned(b, "deadline-policy-changed", "the certificate's deadline policy is not the one the log recorded",
		func(c *proof.Certificate) { c.DeadlinePolicy.TimeZone = "Europe/Berlin" },
		"The policy's zone changed to Europe/Berlin (which gives the same deadline here), signed again.")
	g.resigned(b, "deadline-policy-dropped", "deadline 2026-05-04T21:59:59Z is not one month after receipt (2026-05-01T23:59:59Z)",
		func(c *proof.Certificate) { c.DeadlinePolicy = nil },
		"The deadline policy left out: the deadline no longer follows from the receipt (and the log recorded a policy), signed again.")
}

// The rotation: the orchestrator's key retired on 1 March 2026, its
// successor in use from 25 February; accounts' key retired on 20
// February, its successor in use from 15 February.
var (
	orchestratorRetired = at(2026, 3, 1, 0, 0, 0, 0)
	orchestratorNext    = at(2026, 2, 25, 0, 0, 0, 0)
	accountsRetired     = at(2026, 2, 20, 0, 0, 0, 0)
	accountsNext        = at(2026, 2, 15, 0, 0, 0, 0)
)

// rotationWorld is the World of the rotation, its keys file with the four
// keys, its orchestrator the retired one, and the new orchestrator key.
func (g *gen) rotationWorld() (w *prooftest.World, next *proof.Signer) {
	const seed = Seed + " rotation"
	w = g.world(seed, "accounts", "billing", "crm")
	next = prooftest.SeededSigner(g.tb, seed+" 2026-02-25", proof.RoleOrchestrator, orchestratorNext)
	accounts := prooftest.SeededSigner(g.tb, seed+" 2026-02-15", "accounts", accountsNext)
	old := w.Orchestrator.Key
	old.NotAfter = &orchestratorRetired
	oldAccounts := w.Connectors["accounts"].Key
	oldAccounts.NotAfter = &accountsRetired
	w.Keys.Add(old, next.Key, oldAccounts, accounts.Key)
	return w, next
}

func (g *gen) rotation() {
	rotated := func(accountsAt time.Time) (*prooftest.World, *prooftest.Request, *proof.Signer, *proof.Signer) {
		w, next := g.rotationWorld()
		answers := []prooftest.Answer{
			// Signed by accounts' first key, received while it was valid
			// (or, for the variant, after it was retired).
			{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: accountsAt},
			{System: "billing", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 3, 2, 10, 0, 0, 0),
				Receipt: &lethev1.Receipt{Counts: counts("invoices", 2)}},
			{System: "crm", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND, At: at(2026, 2, 16, 9, 2, 0, 0)},
		}
		r := w.Erase(g.tb, "req_rotation", prooftest.Erasure{
			Received:  at(2026, 2, 16, 9, 0, 0, 0),
			Source:    "account_deleted",
			Answers:   answers,
			Completed: lastAt(answers),
		})
		// The request ends after the first orchestrator key retired: its
		// successor signs the checkpoint and the certificate.
		old := w.Orchestrator
		w.Orchestrator = next
		return w, r, old, next
	}
	w, r, old, _ := rotated(at(2026, 2, 16, 9, 1, 0, 0))
	c := w.Certificate(g.tb, r)
	g.keysFile(RotationKeysFile, w.Keys)
	b := g.valid("key-rotation", RotationKeysFile, w, c,
		"Keys rotated during the request: accounts' receipt is signed by its first key, received on 2026-02-16 while it was "+
			"valid (it was retired on 2026-02-20); the request ended on 2026-03-02, after the first orchestrator key was retired (2026-03-01), "+
			"so its successor signs the checkpoint and the certificate.")

	w2, r2, _, _ := rotated(at(2026, 2, 21, 10, 0, 0, 0))
	g.variant(b, "receipt-key-retired", "accounts: receipt: key not valid at the time of signing", w2.Certificate(g.tb, r2),
		"accounts' receipt is signed by its first key but was received (and logged) on 2026-02-21, after that key was retired.")
	g.changed(b, "certificate-signed-by-retired-key", "certificate signature: key not valid at the time of signing",
		func(c *proof.Certificate) { c.Sign(old) },
		"The certificate is signed by the first orchestrator key, retired before the request ended.")
	g.resigned(b, "checkpoint-signed-by-retired-key", "bad checkpoint: key not valid at the time of signing",
		func(c *proof.Certificate) {
			th := c.SignedTreeHead()
			cp, err := proof.SignCheckpoint(old, Origin, th.Size, th.Root, th.Time)
			if err != nil {
				g.tb.Fatal(err)
			}
			c.Log.Checkpoint = string(cp)
		},
		"The checkpoint is signed, at 2026-03-02, by the first orchestrator key, retired on 2026-03-01; the certificate is signed by its successor.")

	// A certificate issued again after a rotation (a lift, a deferred
	// erasure, a late notice): signed by the key of the day it was issued,
	// which is judged at its checkpoint's time, not at the request's end.
	w3, next := g.rotationWorld()
	early := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 2, 16, 9, 1, 0, 0)},
		{System: "billing", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND, At: at(2026, 2, 16, 9, 2, 0, 0)},
		{System: "crm", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND, At: at(2026, 2, 16, 9, 3, 0, 0)},
	}
	r3 := w3.Erase(g.tb, "req_reissued", prooftest.Erasure{Received: at(2026, 2, 16, 9, 0, 0, 0), Answers: early, Completed: lastAt(early)})
	w3.Orchestrator = next
	g.valid("key-rotation-reissued", RotationKeysFile, w3, w3.CertificateAt(g.tb, r3, at(2026, 3, 5, 12, 0, 0, 0)),
		"A request that ended on 2026-02-16, under the first orchestrator key, whose certificate was issued again on 2026-03-05: "+
			"the successor key, valid only from 2026-02-25, signs its checkpoint and the certificate, judged at the checkpoint's time.")
}

// sweepRun is the retention run of the vectors.
func sweepRun() *proof.SweepRun {
	return &proof.SweepRun{Policy: "audience_measurement", Clock: "record", Cutoff: at(2025, 2, 1, 2, 0, 0, 0),
		Systems: map[string][]string{"accounts": {"connection"}, "emailanalytics": {"connection", "navigation"}}}
}

func (g *gen) sweep() {
	w := g.world(Seed, systems...)
	answers := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 3, 1, 2, 0, 50, 0),
			Receipt: &lethev1.Receipt{Counts: counts("connection", 1520)}},
		{System: "emailanalytics", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 3, 1, 2, 3, 12, 0),
			Receipt: &lethev1.Receipt{Counts: counts("connection", 88, "navigation", 40211)}},
	}
	r := w.Erase(g.tb, "run_sweep", prooftest.Erasure{
		Type:      lifecycle.Sweep,
		Received:  at(2026, 3, 1, 2, 0, 0, 0),
		Source:    "schedule",
		Sweep:     sweepRun(),
		Answers:   answers,
		Completed: lastAt(answers),
	})
	b := g.valid("sweep", KeysFile, w, w.Certificate(g.tb, r),
		"A scheduled retention run (type sweep, about no one: no subject_hash): the policy, its clock and cut-off, and each system's "+
			"categories (sweep), as the log's created entry recorded them; each ACTION_SWEEP receipt echoes the sweep with its system's "+
			"categories and counts what it deleted.")
	g.resigned(b, "sweep-scope-changed", "the certificate's sweep (policy, cut-off, categories) is not what the log recorded",
		func(c *proof.Certificate) { c.Sweep.Cutoff = c.Sweep.Cutoff.AddDate(0, 1, 0) },
		"The run's cut-off a month later than the log recorded (more data past it), signed again: the receipts' sweep no longer matches either.")

	w2 := g.world(Seed, systems...)
	dry := sweepRun()
	dry.Policy, dry.DryRun, dry.Systems = "navigation", true, map[string][]string{"emailanalytics": {"navigation"}}
	dry.Cutoff = at(2021, 12, 15, 12, 0, 0, 0)
	r2 := w2.Erase(g.tb, "run_dry", prooftest.Erasure{
		Type:     lifecycle.Sweep,
		Received: at(2026, 2, 15, 12, 0, 0, 0),
		Source:   "api",
		By:       &dpo,
		Sweep:    dry,
		Answers: []prooftest.Answer{{System: "emailanalytics", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 2, 15, 12, 1, 0, 0),
			Receipt: &lethev1.Receipt{Counts: counts("navigation", 977)}}},
		Completed: at(2026, 2, 15, 12, 1, 0, 0),
	})
	g.valid("sweep-dry-run", KeysFile, w2, w2.Certificate(g.tb, r2),
		"A dry run of a retention policy asked for through the API (dry_run true): the receipt counts what would be deleted.")
}

func (g *gen) purposes() {
	w := g.world(Seed, systems...)
	scope := &proof.PurposeScope{Purposes: []string{"prospecting", "site_cookies"},
		Systems: map[string][]string{"crm": {"marketing_preferences"}, "emailanalytics": {"cookies", "prospecting"}}}
	answers := []prooftest.Answer{
		{System: "crm", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 3, 5, 17, 2, 0, 0),
			Receipt: &lethev1.Receipt{Counts: counts("marketing_preferences", 2)}},
		{System: "emailanalytics", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 3, 5, 17, 2, 30, 0),
			Receipt: &lethev1.Receipt{Counts: counts("cookies", 14, "prospecting", 5)}},
	}
	r := w.Erase(g.tb, "req_consent", prooftest.Erasure{
		Type:         lifecycle.ConsentWithdrawal,
		Received:     at(2026, 3, 5, 17, 0, 0, 0),
		Source:       "api",
		By:           &intake,
		Verification: &proof.Decision{At: at(2026, 3, 5, 17, 1, 0, 0), Actor: intake, Method: "email_code"},
		Purposes:     scope,
		Answers:      answers,
		Completed:    lastAt(answers),
	})
	b := g.valid("consent-withdrawal", KeysFile, w, w.Certificate(g.tb, r),
		"A withdrawal of consent (Art. 7(3)) from two purposes: purposes names them and, per system, the data categories erased; "+
			"only those systems were asked, and each receipt echoes its categories.")
	g.resigned(b, "purposes-changed", "the certificate's purposes is not what the log recorded",
		func(c *proof.Certificate) { c.Purposes.Purposes = []string{"prospecting"} },
		"One of the two purposes left out of the certificate, signed again.")

	w2 := g.world(Seed, systems...)
	r2 := w2.Erase(g.tb, "req_objection", prooftest.Erasure{
		Type:         lifecycle.Objection,
		Received:     at(2026, 3, 6, 9, 0, 0, 0),
		Source:       "api",
		By:           &dpo,
		Verification: submitterVerified(dpo),
		Purposes:     &proof.PurposeScope{Purposes: []string{"audience_measurement"}, Systems: map[string][]string{"accounts": {"connection"}}},
		Answers: []prooftest.Answer{{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 3, 6, 9, 0, 45, 0),
			Receipt: &lethev1.Receipt{Counts: counts("connection", 311)}}},
		Completed: at(2026, 3, 6, 9, 0, 45, 0),
	})
	g.valid("objection", KeysFile, w2, w2.Certificate(g.tb, r2),
		"An objection (Art. 21) to a purpose based on a legitimate interest, submitted already verified by a person of the privacy team: "+
			"the created and the verified entries name them (method other, note \"verified by the submitter\").")
}

func (g *gen) restriction() {
	w := g.world(Seed, systems...)
	restricted := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_RESTRICTED, At: at(2026, 3, 10, 9, 1, 0, 0),
			Receipt: &lethev1.Receipt{Counts: counts("profile", 1)}},
		{System: "billing", Outcome: lethev1.Outcome_OUTCOME_RESTRICTED, At: at(2026, 3, 10, 9, 1, 20, 0),
			Receipt: &lethev1.Receipt{Counts: counts("invoices", 3)}},
		{System: "crm", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND, At: at(2026, 3, 10, 9, 1, 21, 0)},
	}
	restriction := w.Erase(g.tb, "req_restriction", prooftest.Erasure{
		Type:         lifecycle.Restriction,
		Received:     at(2026, 3, 10, 9, 0, 0, 0),
		Source:       "api",
		By:           &intake,
		Verification: &proof.Decision{At: at(2026, 3, 10, 9, 0, 50, 0), Actor: dpo, Method: "account_session"},
		Answers:      restricted,
		Completed:    lastAt(restricted),
	})
	g.valid("restriction", KeysFile, w, w.Certificate(g.tb, restriction),
		"A restriction of processing (Art. 18), in place: accounts and billing marked the person's data restricted (ACTION_RESTRICT), crm held nothing.")

	lifted := []prooftest.Answer{
		{System: "accounts", Outcome: lethev1.Outcome_OUTCOME_LIFTED, At: at(2026, 4, 2, 15, 0, 40, 0)},
		{System: "billing", Outcome: lethev1.Outcome_OUTCOME_LIFTED, At: at(2026, 4, 2, 15, 0, 41, 0)},
		{System: "crm", Outcome: lethev1.Outcome_OUTCOME_NOT_FOUND, At: at(2026, 4, 2, 15, 0, 42, 0)},
	}
	lift := w.Erase(g.tb, "req_lift", prooftest.Erasure{
		Type:      lifecycle.Lift,
		Received:  at(2026, 4, 2, 15, 0, 0, 0),
		Source:    "api",
		By:        &dpo,
		Lift:      &proof.LiftScope{Restriction: restriction.ID, Reason: "accuracy_verified"},
		Answers:   lifted,
		Completed: lastAt(lifted),
	})
	b := g.valid("lift", KeysFile, w, w.Certificate(g.tb, lift),
		"The lift of that restriction (type lift, about no one): lift names the restriction and why it ends, as its created entry recorded "+
			"them; each ACTION_LIFT receipt echoes the restriction.")
	// The restriction's certificate, issued again when the lift ended.
	again := g.valid("restriction-lifted", KeysFile, w, w.CertificateAt(g.tb, restriction, lift.Completed),
		"The restriction's certificate issued again when the lift ended: its log's lifted entry, and its lift, name the lift request (by) and the reason.")

	g.resigned(b, "lift-scope-changed", "the certificate's lift (restriction, reason) is not what the log recorded",
		func(c *proof.Certificate) { c.Lift.Reason = "subject_request" },
		"The lift's reason changed from accuracy_verified to subject_request, signed again.")
	g.resigned(again, "restriction-lift-hidden", "the certificate's lift (restriction, reason) is not what the log recorded",
		func(c *proof.Certificate) { c.Lift = nil },
		"The lifted restriction's certificate leaves out the lift its log records (as if still in place), signed again.")
}

func (g *gen) reapply() {
	w := g.world(Seed, systems...)
	// The keyed hashes of the people of part 2, sorted: the log and the
	// certificate hold their count and digest only.
	hashes := make([]string, 1234)
	for i := range hashes {
		hashes[i] = hex.EncodeToString(digest(fmt.Sprintf("erased person %d", i)))
	}
	slices.Sort(hashes)
	scope := &proof.ReapplyScope{System: "billing", Since: at(2026, 3, 1, 0, 0, 0, 0), People: len(hashes),
		HashesSHA256: hex.EncodeToString(digest(strings.Join(hashes, "\n"))), Part: 2, Parts: 2}
	r := w.Erase(g.tb, "req_reapply", prooftest.Erasure{
		Type:     lifecycle.Reapply,
		Received: at(2026, 3, 20, 11, 0, 0, 0),
		Source:   "api",
		By:       &dpo,
		Reapply:  scope,
		Answers: []prooftest.Answer{{System: "billing", Outcome: lethev1.Outcome_OUTCOME_ERASED, At: at(2026, 3, 20, 11, 2, 0, 0),
			Receipt: &lethev1.Receipt{Counts: counts("invoices", 41, "profile", 37)}}},
		Completed: at(2026, 3, 20, 11, 2, 0, 0),
	})
	b := g.valid("reapply", KeysFile, w, w.Certificate(g.tb, r),
		"Part 2 of 2 of a re-application of erasures to billing, restored from a backup of 2026-03-01 (type reapply, about no one): "+
			"reapply names the system, since when, and the people by count and digest of their keyed hashes.")
	g.resigned(b, "reapply-scope-changed", "the certificate's re-application (system, since, people) is not what the log recorded",
		func(c *proof.Certificate) { c.Reapply.People = 8000 },
		"The re-application claims 8000 people, not the 1234 the log recorded, signed again.")
}

func (g *gen) refused() {
	w := g.world(Seed, systems...)
	r := w.Erase(g.tb, "req_denied", prooftest.Erasure{
		Received: at(2026, 2, 18, 10, 0, 0, 0),
		Source:   "api",
		By:       &intake,
		Denial: &proof.Decision{At: at(2026, 2, 27, 16, 30, 0, 0), Actor: dpo, Ground: "identity_not_established",
			Note: "no answer to two requests for proof of identity"},
	})
	b := g.valid("denied", KeysFile, w, w.Certificate(g.tb, r),
		"An erasure refused while it waited for its identity check (denied): no system was asked, so systems is null; the denial says "+
			"who refused it, on what ground, with a note whose hash the log's denied entry holds.")
	g.resigned(b, "denial-changed", "the certificate's denial (by token tok_7f3a at 2026-02-27T16:30:00Z) is not the one the log records",
		func(c *proof.Certificate) { c.Denial.Ground = "manifestly_unfounded" },
		"The denial's ground changed, signed again.")

	w2 := g.world(Seed, systems...)
	r2 := w2.Erase(g.tb, "req_expired", prooftest.Erasure{Received: at(2026, 1, 5, 12, 0, 0, 0), Source: "api", By: &intake, Expired: true})
	g.valid("expired", KeysFile, w2, w2.Certificate(g.tb, r2),
		"An erasure whose identity was never checked, expired after 30 days: no system was asked.")
}

func (g *gen) version1() base {
	w := g.world(Seed, systems...)
	w.Origin = "" // version 1: a signed tree head
	r := w.Erase(g.tb, "req_version1", plainErasure(nil))
	b := g.valid("version-1", KeysFile, w, w.Certificate(g.tb, r),
		"The plain erasure as a version 1 certificate, still issued by older orchestrators: the log is proved against Lethe's own signed "+
			"tree head (tree_head), not a checkpoint.")
	g.resigned(b, "tree-head-signature-changed", "tree head: signature does not verify",
		func(c *proof.Certificate) { c.Log.TreeHead.Signature[7] ^= 1 },
		"A bit of the tree head's signature flipped, the certificate signed again.")
	return b
}

// form: what the decoder refuses before any signature is checked.
func (g *gen) form(e, v1 base) {
	enc := string(encode(e.c))
	g.bytes(e, "unknown-field", `not a certificate: json: unknown field "note"`,
		[]byte(strings.Replace(enc, `{"version":2,`, `{"version":2,"note":"x",`, 1)),
		"A field the format does not have, added at the start.")
	var indented bytes.Buffer
	if err := json.Indent(&indented, []byte(strings.TrimSuffix(enc, "\n")), "", "  "); err != nil {
		g.tb.Fatal(err)
	}
	g.bytes(e, "not-canonical-whitespace", "not in canonical form",
		[]byte(indented.String()+"\n"), "The certificate indented: the same JSON value, not its one encoding.")
	g.bytes(e, "trailing-data", "not a certificate: trailing data",
		[]byte(enc+enc), "Two certificates, one after the other.")

	// The signature's last base64 digit before its padding carries bits
	// that a lenient decoder ignores: set one, and the bytes decode alike.
	sig := base64.StdEncoding.EncodeToString(e.c.Signature)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := len(sig) - len("==") - 1
	loose := sig[:last] + string(alphabet[strings.IndexByte(alphabet, sig[last])^1]) + sig[last+1:]
	if b, err := base64.StdEncoding.DecodeString(loose); err != nil || string(b) != string(e.c.Signature) || loose == sig {
		g.tb.Fatalf("the loose base64 does not decode to the signature: %v", err)
	}
	g.bytes(e, "signature-non-canonical-base64", "not in canonical form",
		[]byte(strings.Replace(enc, `"signature":"`+sig+`"`, `"signature":"`+loose+`"`, 1)),
		"The signature's base64 with an unused bit of its last digit set: it decodes to the same 64 bytes, which verify, but it is not "+
			"the certificate's one encoding.")

	g.resigned(e, "version-1-with-checkpoint", "version 1: the log is proved against a tree_head, and only that",
		func(c *proof.Certificate) { c.Version = 1 },
		"A version 1 certificate whose log is proved against a checkpoint, signed again.")
	g.resigned(v1, "version-2-with-tree-head", "version 2: the log is proved against a checkpoint, and only that",
		func(c *proof.Certificate) { c.Version = 2 },
		"A version 2 certificate whose log is proved against a tree head, signed again.")
	g.resigned(e, "version-3", "version 3: this verifier reads versions 1 to 2",
		func(c *proof.Certificate) { c.Version = 3 },
		"A version this verifier does not read.")
}

// signatures: the orchestrator's signature over the certificate.
func (g *gen) signatures(e base) {
	g.changed(e, "changed-after-signing", "certificate signature: signature does not verify",
		func(c *proof.Certificate) { c.Tenant = "demo2" },
		"The tenant changed after the certificate was signed (the log's created entry disagrees too).")
	g.changed(e, "signature-changed", "certificate signature: signature does not verify",
		func(c *proof.Certificate) { c.Signature[7] ^= 1 },
		"A bit of the certificate's signature flipped.")
	g.changed(e, "certificate-signed-by-connector-key", "certificate signature: key not registered for this system",
		func(c *proof.Certificate) { c.Sign(e.w.Connectors["accounts"]) },
		"The certificate signed by accounts' connector key, which the keys file has, but not as an orchestrator key.")
	stranger := prooftest.SeededSigner(g.tb, Seed+" unregistered", proof.RoleOrchestrator, prooftest.KeysFrom)
	g.changed(e, "certificate-signed-by-unknown-key", "certificate signature: key not in the keys file",
		func(c *proof.Certificate) { c.Sign(stranger) },
		"The certificate signed by an orchestrator key that is not in the keys file.")
}

// logs: the log entries and the checkpoint they are proved against.
func (g *gen) logs(e base) {
	th := e.c.SignedTreeHead()
	log := e.w.Log
	neighbour := g.neighbourEntries(e)
	g.resigned(e, "entry-dropped-receipt-accepted", "accounts: the log did not accept this receipt",
		func(c *proof.Certificate) {
			i := entryIndex(g.tb, c, `"event":"receipt_accepted"`, `"system":"accounts"`)
			c.Log.Entries = slices.Delete(c.Log.Entries, i, i+1)
		},
		"The log entry accepting accounts' receipt left out, signed again.")
	g.resigned(e, "entry-dropped-created", `the log has no "created" entry for the request`,
		func(c *proof.Certificate) { c.Log.Entries = c.Log.Entries[1:] },
		"The request's created entry left out, signed again.")
	g.resigned(e, "entry-dropped-end", "the log has no entry ending the request",
		func(c *proof.Certificate) { c.Log.Entries = c.Log.Entries[:len(c.Log.Entries)-1] },
		"The entry ending the request (fulfilled) left out, signed again.")
	g.resigned(e, "entry-of-another-request", "belongs to request req_neighbour",
		func(c *proof.Certificate) {
			other := log.Logged(neighbour[1], th.Size) // its verified entry
			c.Log.Entries = slices.Insert(c.Log.Entries, 0, other)
		},
		"Another request's verified entry, with its inclusion proof, added in the log's order, signed again.")
	g.resigned(e, "entries-out-of-order", "the entries are not in the log's order",
		func(c *proof.Certificate) { c.Log.Entries[1], c.Log.Entries[2] = c.Log.Entries[2], c.Log.Entries[1] },
		"Two entries swapped, signed again.")
	g.resigned(e, "entry-changed", "is not in the log of size",
		func(c *proof.Certificate) {
			i := entryIndex(g.tb, c, `"event":"receipt_accepted"`, `"system":"crm"`)
			c.Log.Entries[i].Entry = []byte(strings.Replace(string(c.Log.Entries[i].Entry), `"attempt":1`, `"attempt":2`, 1))
		},
		"An entry's bytes changed (crm's receipt_accepted entry says attempt 2), its proof kept, signed again.")
	g.resigned(e, "checkpoint-of-smaller-log", fmt.Sprintf("entry %d is not in the log of size %d", th.Size-1, th.Size-1),
		func(c *proof.Certificate) {
			// A checkpoint of the log before the request's last entry,
			// the other entries proved in it.
			smaller := th.Size - 1
			c.Log.Checkpoint = string(log.CheckpointAt(g.tb, e.w.Orchestrator, Origin, smaller, th.Time))
			for i, le := range c.Log.Entries {
				if le.Index < smaller {
					c.Log.Entries[i] = log.Logged(le.Index, smaller)
				}
			}
		},
		"A checkpoint of the log before the request's last entry, every other entry proved in it, signed again: the last is not in it.")
	g.resigned(e, "checkpoint-signed-by-connector-key", "bad checkpoint: not signed by an orchestrator key of the keys file",
		func(c *proof.Certificate) {
			c.Log.Checkpoint = string(log.CheckpointAt(g.tb, e.w.Connectors["accounts"], Origin, th.Size, th.Time))
		},
		"The checkpoint signed by accounts' connector key, signed again: without a tree head, no entry is proved either.")
	g.resigned(e, "completed-at-changed", "the log ended the request fulfilled at 2026-02-10T09:32:07.019Z, the certificate says fulfilled at 2026-02-10T09:31:07.019Z",
		func(c *proof.Certificate) { c.CompletedAt = c.CompletedAt.Add(-time.Minute) },
		"completed_at a minute earlier than the log's end, signed again.")
	g.resigned(e, "verification-note-changed", "the certificate's verification (by token tok_7f3a at 2026-02-10T09:31:05Z) is not the one the log records",
		func(c *proof.Certificate) { c.Verification.Note = "code confirmed" },
		"The identity check's note is not the one whose hash the log's verified entry holds, signed again.")
}

// neighbourEntries are the indexes of the entries of the request logged
// before e's.
func (g *gen) neighbourEntries(e base) []int64 {
	r := e.w.Request("req_neighbour")
	if r == nil || len(r.Entries) < 2 {
		g.tb.Fatalf("no neighbour request before %s", e.c.RequestID)
	}
	return r.Entries
}

// receipts: the systems' signed receipts.
func (g *gen) receipts(e base) {
	g.resigned(e, "receipt-changed", "accounts: receipt: signature does not verify",
		func(c *proof.Certificate) {
			s := system(g.tb, c, "accounts")
			rc := &lethev1.Receipt{}
			if err := proto.Unmarshal(s.Receipt, rc); err != nil {
				g.tb.Fatal(err)
			}
			rc.Counts[0].Count = 2 // login_history 12 -> 2, its signature kept
			*s = g.resultOf(rc)
		},
		"accounts' receipt changed (login_history 12 to 2) with its signature kept, the summary made to match, signed again.")
	g.resigned(e, "summary-changed", "accounts: the summary does not match the signed receipt",
		func(c *proof.Certificate) { system(g.tb, c, "accounts").Remaining = 4 },
		"The summary of accounts' answer says 4 records remain, which its receipt does not, signed again.")
	g.resigned(e, "system-dropped", "the log names crm, the certificate does not",
		func(c *proof.Certificate) {
			c.Systems = slices.DeleteFunc(c.Systems, func(s proof.SystemResult) bool { return s.System == "crm" })
		},
		"crm left out of the systems, though the log names it, signed again.")
	g.resigned(e, "receipt-of-another-request", "accounts: the receipt answers task req_neighbour.accounts, not this request's",
		func(c *proof.Certificate) {
			*system(g.tb, c, "accounts") = g.neighbourReceipt(e)
		},
		"accounts' answer replaced by its answer to another request (a valid, logged receipt), signed again.")
	g.resigned(e, "receipt-for-another-time", "accounts: the log did not accept this receipt",
		func(c *proof.Certificate) {
			rc := e.w.Receipt(g.tb, "req_erasure", "accounts", lethev1.Outcome_OUTCOME_ERASED, at(2026, 2, 10, 9, 31, 43, 0))
			*system(g.tb, c, "accounts") = g.resultOf(rc)
		},
		"accounts' answer replaced by a receipt of its key for this very task, but not the one the log accepted, signed again.")
}

// resultOf is a system's entry of a certificate for receipt rc, as the
// orchestrator makes it.
func (g *gen) resultOf(rc *lethev1.Receipt) proof.SystemResult {
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(rc)
	if err != nil {
		g.tb.Fatal(err)
	}
	res, err := proof.SystemResultOf(raw)
	if err != nil {
		g.tb.Fatal(err)
	}
	return res
}

// neighbourReceipt is the accounts result of the request logged before
// e's, as its certificate has it.
func (g *gen) neighbourReceipt(e base) proof.SystemResult {
	r := e.w.Request("req_neighbour")
	c := e.w.CertificateAt(g.tb, r, r.Completed.Add(time.Minute))
	return *system(g.tb, c, "accounts")
}

// state: the state the answers give.
func (g *gen) state(failed base) {
	g.resigned(failed, "state-failed-shown-fulfilled", `the log ended the request failed at 2026-02-16T08:32:00Z, the certificate says fulfilled`,
		func(c *proof.Certificate) { c.State = lifecycle.Fulfilled },
		"The failed request shown fulfilled, signed again: the log's end says failed (and the answers too).")
}

// submitterVerified is the identity check of a request submitted already
// verified through the API, as the orchestrator records it.
func submitterVerified(by proof.Actor) *proof.Decision {
	return &proof.Decision{Actor: by, Method: "other", Note: "verified by the submitter"}
}

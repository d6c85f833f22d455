package orchestrator

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lethe-dev/lethe/services/orchestrator/auth"
)

// The console in a real browser (Debian's chromium, headless, driven over
// the DevTools protocol): sign in, file, verify, watch a request end
// without a reload, deny, extend, replay a dead letter; an auditor sees
// no action and a forged one is refused; a tenant sees only its own; sign
// out ends the session. With LETHE_UPDATE_SCREENSHOTS=1 it writes the
// README's screenshots to docs/img/.

// browserPath finds a Chromium on PATH, or "".
func browserPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// tab is one browser context (its own cookies): one person.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func (b *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func (b *tab) visit(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func eval[T any](b *tab, js string, opts ...chromedp.EvaluateOption) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js, opts...))
	if err != nil {
		b.t.Fatalf("eval %s: %v", js, err)
	}
	return v
}

func (b *tab) html() string {
	b.t.Helper()
	return eval[string](b, `document.documentElement.outerHTML`)
}

func (b *tab) path() string {
	b.t.Helper()
	return eval[string](b, `location.pathname + location.search`)
}

// waitText waits until the element's text holds want.
func (b *tab) waitText(sel, want string, within time.Duration) {
	b.t.Helper()
	var got string
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		got = eval[string](b, `(document.querySelector(`+jsString(sel)+`)||{}).textContent||""`)
		if strings.Contains(got, want) {
			return
		}
	}
	b.t.Fatalf("%s says %q, never %q", sel, got, want)
}

func jsString(s string) string { return fmt.Sprintf("%q", s) }

// submitForm clicks a form's submit button and waits for the next page.
func (b *tab) submitForm(form string) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](`window.__left = 1`))
	b.do(chromedp.Click(chromedp.CSS(form + ` button[type=submit]`)))
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		left, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`window.__left === 1 && document.readyState === "complete"`))
		if err == nil && !left {
			if ready, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.readyState === "complete"`)); err == nil && ready {
				return
			}
		}
	}
	b.t.Fatalf("submitting %s led nowhere", form)
}

func (b *tab) signIn(token string) {
	b.t.Helper()
	b.visit("/console/login")
	if !strings.Contains(b.text("#token-help"), "The local default: paste the token in data/admin.token") {
		b.t.Error("the sign-in page does not say where the local token is")
	}
	b.do(chromedp.SetValue(chromedp.CSS(`input[name=token]`), token))
	b.submitForm(`form[action="/console/login"]`)
	if p := b.path(); p != "/console/" {
		b.t.Fatalf("after sign-in at %s: %.300s", p, b.html())
	}
}

func (b *tab) signOut() {
	b.t.Helper()
	b.submitForm(`form[action="/console/logout"]`)
	if p := b.path(); !strings.HasPrefix(p, "/console/login") {
		b.t.Fatalf("after sign-out at %s", p)
	}
	b.visit("/console/requests")
	if p := b.path(); !strings.HasPrefix(p, "/console/login") {
		b.t.Errorf("after sign-out a page opened: %s", p)
	}
}

// fileRequest files a request through the form and returns its id.
func (b *tab) fileRequest(typ, email string, verified bool) string {
	b.t.Helper()
	b.visit("/console/requests/new")
	b.do(chromedp.Click(chromedp.CSS(`input[name=type][value=`+typ+`]`)),
		chromedp.SetValue(chromedp.CSS(`#n-tenant`), "demo"),
		chromedp.SetValue(chromedp.CSS(`#n-email`), email))
	if verified {
		b.do(chromedp.Click(chromedp.CSS(`input[name=verified]`)))
	}
	b.submitForm(`#new-form`)
	p := b.path()
	if !strings.HasPrefix(p, "/console/requests/req_") {
		b.t.Fatalf("after filing at %s: %.500s", p, b.html())
	}
	return strings.TrimPrefix(p, "/console/requests/")
}

// labelled checks that every visible control of the page has a label.
func (b *tab) labelled() {
	b.t.Helper()
	bad := eval[[]string](b, `[...document.querySelectorAll("input,select,textarea")].filter(el =>
		el.type !== "hidden" && !(el.labels && el.labels.length) && !el.getAttribute("aria-label")).map(el => el.name || el.id)`)
	if len(bad) > 0 {
		b.t.Errorf("%s: controls without a label: %v", b.path(), bad)
	}
}

func (b *tab) screenshot(name string) {
	b.t.Helper()
	if os.Getenv("LETHE_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	img, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "img", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, img, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("wrote %s", path)
}

func TestConsoleInBrowser(t *testing.T) {
	exe := browserPath()
	if exe == "" {
		t.Skip("no browser: chromium (or chromium-browser) is not on PATH; the console's browser tests need one (apt-get install chromium)")
	}
	e := newEnv(t, func(c *Config) { c.Deadlines = demoTenants(t) })
	e.connect("alpha", &toySystem{})
	// beta is down (every call fails) until it is fixed: its tasks
	// dead-letter. (A connector left out and started later would answer
	// the backlog of its stream by itself, leaving nothing to replay.)
	beta := &toySystem{failN: 1 << 30}
	e.connect("beta", beta)

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))...)
	t.Cleanup(cancelAlloc)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(browser); err != nil {
		t.Skipf("the browser %s does not start here: %v", exe, err)
	}
	person := func() *tab {
		ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
		t.Cleanup(cancel)
		ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
		t.Cleanup(cancelT)
		b := &tab{t: t, ctx: ctx, base: e.api}
		b.do(chromedp.EmulateViewport(1280, 900))
		return b
	}

	// Requests waiting, for the overview to show a burn-down: received
	// earlier, their deadlines fall in each window.
	now := time.Now().UTC()
	for i, daysAgo := range []int{40, 30, 29, 27, 26, 24, 20, 19, 12, 3, 1} {
		typ := "erasure"
		if i%3 == 1 {
			typ = "export"
		}
		e.submit(fmt.Sprintf(`{"type":%q,"tenant":"demo","subject":{"email":"waiting-%02d@example.com"},"received_at":%q}`,
			typ, i, now.AddDate(0, 0, -daysAgo).Format(time.RFC3339)))
	}

	admin := person()
	admin.signIn(e.token)
	admin.labelled()

	// Two requests whose beta task dead-letters: one retried from the
	// list, the other by a replay of the system, once beta runs.
	const email = "browser-person-0007@example.com"
	dead1 := admin.fileRequest("erasure", "dead-1@example.com", true)
	dead2 := admin.fileRequest("erasure", "dead-2@example.com", true)
	e.waitState(dead1, "failed")
	e.waitState(dead2, "failed")
	beta.mu.Lock()
	beta.failN = 0
	beta.mu.Unlock()
	admin.visit("/console/deadletters")
	admin.labelled()
	admin.do(chromedp.Click(chromedp.CSS(`input[name=sel][value="` + dead1 + `/beta"]`)))
	admin.submitForm(`#retry-selected`)
	admin.waitText(".flash", "1 task sent again", 5*time.Second)
	admin.do(chromedp.SetValue(chromedp.CSS(`#rp-system`), "beta"))
	admin.submitForm(`#replay-form`)
	admin.waitText(".flash", "1 task of beta sent again", 5*time.Second)
	e.waitState(dead1, "fulfilled")
	e.waitState(dead2, "fulfilled")

	// File, verify, and watch it end without a reload.
	id := admin.fileRequest("erasure", email, false)
	admin.waitText("#state", "Identity to check", 5*time.Second)
	admin.labelled()
	admin.do(chromedp.SetValue(chromedp.CSS(`#v-method`), "document"), chromedp.SetValue(chromedp.CSS(`#v-note`), "passport checked at the desk"))
	admin.submitForm(`#verify-form`)
	admin.do(chromedp.Evaluate[chromedp.Void](`window.__stayed = "yes"`))
	admin.waitText("#state", "Fulfilled", 20*time.Second)
	if eval[string](admin, `String(window.__stayed)`) != "yes" {
		t.Error("the page reloaded to show the end")
	}
	admin.waitText("#actions", "View the certificate", 5*time.Second) // swapped in out of band
	admin.waitText(".timeline", "Certificate of fulfilment issued", 5*time.Second)
	if strings.Contains(strings.ToLower(admin.html()), email) {
		t.Error("the page of an ended request shows the subject's email")
	}
	admin.visit("/console/requests/" + id) // without the flash of the verification
	admin.screenshot("console-request.png")
	admin.visit("/console/requests/" + id + "/certificate")
	admin.waitText(".verdict", "Verified", 5*time.Second)

	// Deny one; extend another.
	denied := admin.fileRequest("export", "deny-me@example.com", false)
	admin.do(chromedp.SetValue(chromedp.CSS(`#d-reason`), "excessive"))
	admin.submitForm(`#deny-form`)
	admin.waitText("#state", "Denied", 5*time.Second)
	if e.state(denied) != "denied" {
		t.Errorf("denied request is %s", e.state(denied))
	}
	extended := admin.fileRequest("erasure", "extend-me@example.com", false)
	admin.do(chromedp.SetValue(chromedp.CSS(`#e-reason`), "Our archive system needs a migration first."))
	admin.submitForm(`#extend-form`)
	admin.waitText("#live", "extended from", 5*time.Second)
	admin.waitText(".flash", "Deadline extended", 5*time.Second)
	// Refused in words: a second extension.
	admin.visit("/console/requests/" + extended)
	if n := eval[int](admin, `document.querySelectorAll("#extend-form").length`); n != 0 {
		t.Error("an extended request still offers an extension")
	}

	// The overview and the list, at 1280 px and at a phone's width.
	admin.visit("/console/")
	admin.waitText("#burn", "Deadlines", 5*time.Second)
	admin.screenshot("console-overview.png")
	admin.visit("/console/requests?state=active")
	admin.labelled()
	if !strings.Contains(admin.html(), extended) {
		t.Error("the list of requests not yet ended lacks the extended one")
	}
	admin.visit("/console/requests")
	admin.screenshot("console-requests.png")
	admin.do(chromedp.EmulateViewport(390, 844))
	for _, p := range []string{"/console/", "/console/requests", "/console/requests/" + id} {
		admin.visit(p)
		if wide := eval[bool](admin, `document.documentElement.scrollWidth > window.innerWidth + 1`); wide {
			t.Errorf("%s is wider than a phone's window", p)
		}
	}
	admin.do(chromedp.EmulateViewport(1280, 900))
	// Keyboard: the first Tab stop skips to the content.
	if first := eval[string](admin, `document.querySelector("a[href], button, input, select, textarea").className`); first != "skip" {
		t.Errorf("the first focusable element is %q, not the skip link", first)
	}
	admin.signOut()

	// An auditor sees no action, and a forged one is refused.
	auditor := person()
	auditor.signIn(e.newToken(e.store, "auditor", "demo", auth.Auditor))
	auditor.visit("/console/requests/" + extended)
	auditor.waitText("#actions", "takes no action", 5*time.Second)
	if n := eval[int](auditor, `document.querySelectorAll("main form[method=post]").length`); n != 0 {
		t.Errorf("the auditor's page has %d action forms", n)
	}
	status := eval[int](auditor, `fetch("/console/requests/`+extended+`/deny", {method: "POST",
		headers: {"Content-Type": "application/x-www-form-urlencoded"},
		body: "reason=excessive&csrf=" + encodeURIComponent(document.querySelector("input[name=csrf]").value)}).then(r => r.status)`,
		chromedp.EvalAwaitPromise)
	if status != 403 {
		t.Errorf("the auditor's forged deny = %d, want 403", status)
	}
	if e.state(extended) != "pending_verification" {
		t.Errorf("after the forged deny the request is %s", e.state(extended))
	}
	auditor.signOut()

	// Another tenant's session never shows demo's requests.
	other := person()
	other.signIn(e.newToken(e.store, "other-dpo", "other", auth.DPO))
	other.visit("/console/requests")
	html := other.html()
	for _, r := range []string{id, denied, extended, dead1} {
		if strings.Contains(html, r) {
			t.Errorf("tenant other's list shows %s", r)
		}
	}
	other.visit("/console/requests/" + id)
	other.waitText("main", "no such request", 5*time.Second)
	other.visit("/console/")
	if !strings.Contains(other.text("main"), "0 open") {
		t.Errorf("tenant other's overview counts demo's requests: %.300s", other.text(".kpis"))
	}
	other.signOut()
	e.logs.NoneOf(t, email)
}

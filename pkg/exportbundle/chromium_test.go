package exportbundle_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium returns the path of Debian's chromium (or chromium-browser), or
// skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("neither chromium nor chromium-browser is on PATH (Debian: apt-get install chromium): the page is not rendered")
	return ""
}

// runChromium runs headless Chromium on a page with args, with no network:
// every host name fails to resolve. It returns what Chromium printed.
func runChromium(t *testing.T, bin, page string, args ...string) []byte {
	t.Helper()
	profile, err := os.MkdirTemp("", "exportbundle-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(profile) }) // best effort: Chromium may still be writing there
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
		"--disable-background-networking", "--disable-component-update", "--no-pings",
		"--host-resolver-rules=MAP * ~NOTFOUND",
		"--user-data-dir=" + profile, "--hide-scrollbars",
	}, args...)
	cmd := exec.CommandContext(ctx, bin, append(args, "file://"+page)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tail := stderr.String()
		tail = tail[max(0, len(tail)-2000):]
		t.Fatalf("%s: %v\n%s", bin, err, tail)
	}
	return stdout.Bytes()
}

// unzip writes a bundle's entries under dir and returns the path of its
// index.html.
func unzip(t *testing.T, bundle []byte, dir string) string {
	t.Helper()
	got, _ := entries(t, bundle)
	for name, b := range got {
		if !filepath.IsLocal(name) {
			t.Fatalf("entry %q is not a local path", name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "index.html")
}

func TestIndexInChromium(t *testing.T) {
	bin := chromium(t)
	m, s := demo(t)
	m.Systems[0].Note = "<script>document.title='pwned'</script>"
	page := unzip(t, write(t, m, s), t.TempDir())
	dom := string(runChromium(t, bin, page, "--dump-dom"))
	for _, want := range []string{
		"<h1>Your data held by Acme Webinars</h1>",
		"<h2>Your account</h2>", "<h2>Identification</h2>", "<h2>Sign-ins</h2>", "<h2>Billing</h2>",
		"<h2>Emails and engagement</h2>", "<h2>Recordings</h2>", "<h2>Your contributions</h2>", "<h2>Sub processors</h2>",
		"<td>camille.martin@example.org</td>", "<td>Safari on iPhone</td>", "<td>INV-2026-0312</td>",
		"Will the export API support CSV?",
		"This service holds no data about you.",
		`<video controls="" preload="metadata" src="files/recordings/`,
		"&lt;script&gt;document.title='pwned'&lt;/script&gt;",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page does not have %q", want)
		}
	}
	if strings.Contains(dom, "<title>pwned</title>") || strings.Contains(strings.ToLower(dom), "<script") {
		t.Errorf("the rendered page has a script")
	}
}

// TestScreenshot renders the demo bundle's index.html to
// docs/img/export-index.png. It runs only with LETHE_UPDATE_SCREENSHOT=1:
//
//	LETHE_UPDATE_SCREENSHOT=1 go test -run TestScreenshot ./exportbundle/
func TestScreenshot(t *testing.T) {
	if os.Getenv("LETHE_UPDATE_SCREENSHOT") != "1" {
		t.Skip("set LETHE_UPDATE_SCREENSHOT=1 to render docs/img/export-index.png")
	}
	bin := chromium(t)
	m, s := demo(t)
	page := unzip(t, write(t, m, s), t.TempDir())
	out, err := filepath.Abs(filepath.Join("..", "..", "docs", "img", "export-index.png"))
	if err != nil {
		t.Fatal(err)
	}
	width := "1280,1100"
	if w := os.Getenv("LETHE_SCREENSHOT_SIZE"); w != "" { // e.g. 390,844 to look at a phone's width
		width = w
		out = filepath.Join(t.TempDir(), "export-index.png")
	}
	runChromium(t, bin, page, "--screenshot="+out, "--window-size="+width)
	b, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("no PNG at %s: %v", out, err)
	}
	t.Logf("wrote %s (%d bytes)", out, len(b))
}

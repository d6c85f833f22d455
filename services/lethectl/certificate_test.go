package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCertificate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	srv := newProofServer(t, f)
	cert := f.certificate(t, "req-1", received.Add(time.Hour))
	srv.mu.Lock()
	srv.certs["req-1"] = cert
	srv.running["req-open"] = true
	srv.certs["req-witnessed"] = cert
	srv.unwitnessed["req-witnessed"] = 2
	srv.mu.Unlock()

	tests := []struct {
		name string
		args []string // after "certificate --api URL"
		out  bool     // -o FILE is added
		want wantOutput
		// body is what stdout or the file must hold exactly; "" means no
		// file may be left.
		body string
	}{
		{name: "to a file", args: []string{"req-1"}, out: true, body: string(cert),
			want: wantOutput{stderr: []string{"wrote " + strconv.Itoa(len(cert)) + " bytes to ", "check it with: lethectl verify "}}},
		{name: "to stdout", args: []string{"req-1"}, body: string(cert)},
		{name: "the page for people", args: []string{"req-1", "--html"}, out: true,
			body: "<!doctype html><title>Certificate of fulfilment req-1</title><p>" + strconv.Itoa(len(cert)) + " bytes</p>\n",
			want: wantOutput{stderr: []string{"wrote ", "!lethectl verify"}}},
		{name: "a request still running", args: []string{"req-open"}, out: true,
			want: wantOutput{code: exitError, stderr: []string{"lethectl certificate: request has not ended (HTTP 409)", "lethectl wait req-open"}}},
		{name: "an ended request, waiting for the witnesses", args: []string{"req-witnessed"}, out: true, body: string(cert),
			want: wantOutput{stderr: []string{"its certificate waits for the witnesses' cosignatures", "wrote "}}},
		{name: "an unknown request", args: []string{"req-nope", "--html"}, out: true,
			want: wantOutput{code: exitError, stderr: []string{"request not found (HTTP 404)", "!lethectl wait"}}},
		{name: "no id", want: wantOutput{code: exitUsage, stderr: []string{"missing argument", "usage: lethectl certificate ID"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			out := filepath.Join(dir, "cert.json")
			args := append([]string{"certificate", "--api", srv.URL}, tt.args...)
			if tt.out {
				args = append(args, "-o", out)
			}
			code, stdout, stderr := runCLI(t, args...)
			tt.want.check(t, code, stdout, stderr)
			got := stdout
			if tt.out {
				if stdout != "" {
					t.Errorf("stdout = %q, want nothing", stdout)
				}
				b, _ := os.ReadFile(out)
				got = string(b)
			}
			if got != tt.body {
				t.Errorf("got %q, want %q", got, tt.body)
			}
			if tt.body == "" {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("files left behind: %v", entries)
				}
			}
		})
	}

	t.Run("downloaded, it verifies", func(t *testing.T) {
		t.Parallel()
		out := filepath.Join(t.TempDir(), "cert.json")
		mustRun(t, "certificate", "--api", srv.URL, "req-1", "-o", out)
		if got := mustRun(t, "verify", out, "--keys", f.KeysPath); !strings.Contains(got, "VERIFIED: request req-1") {
			t.Errorf("verify says:\n%s", got)
		}
	})
}

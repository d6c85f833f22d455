// Command testsummary reads `go test -json` on stdin and prints what a
// person wants from a whole suite: a line per package, the reason of every
// skipped test (a test skipped for want of an engine says which), the full
// output of every failed test, and a closing count. It exits 1 if anything
// failed.
//
//	go test -json ./... | GOWORK=off go run scripts/testsummary/main.go
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

func main() {
	outputs := map[string][]string{} // package/test -> its output lines
	var passed, failed, skipped int
	bad := false
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Action == "" {
			fmt.Println(sc.Text()) // go vet or build output, as is
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output", "build-output":
			outputs[key] = append(outputs[key], e.Output)
			if e.Action == "build-output" {
				fmt.Print(e.Output)
			}
		case "build-fail":
			bad = true
		case "pass", "fail", "skip":
			if e.Test == "" {
				pkgLine(e, outputs[key])
				bad = bad || e.Action == "fail"
				delete(outputs, key)
				continue
			}
			switch e.Action {
			case "pass":
				passed++
			case "skip":
				skipped++
				fmt.Printf("SKIP  %s %s: %s\n", e.Package, e.Test, reason(outputs[key]))
			case "fail":
				failed++
				fmt.Printf("--- FAIL: %s %s\n%s", e.Package, e.Test, strings.Join(outputs[key], ""))
			}
			delete(outputs, key)
		}
	}
	fmt.Printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if bad || failed > 0 {
		os.Exit(1)
	}
}

func pkgLine(e event, out []string) {
	switch {
	case e.Action == "pass":
		fmt.Printf("ok    %s\t%.2fs\n", e.Package, e.Elapsed)
	case e.Action == "skip":
		fmt.Printf("?     %s\t[no test files]\n", e.Package)
	default:
		// A package that failed outside any test (a panic, a build error).
		fmt.Printf("FAIL  %s\n%s", e.Package, strings.Join(out, ""))
	}
}

// reason is what the test said when it skipped, without the file:line.
func reason(out []string) string {
	for i := len(out) - 1; i >= 0; i-- {
		l := strings.TrimSpace(out[i])
		if l == "" || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") {
			continue
		}
		if _, msg, ok := strings.Cut(l, ": "); ok && strings.Contains(l, ".go:") {
			return msg
		}
		return l
	}
	return "(no reason given)"
}

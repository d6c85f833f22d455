// Command vectors writes the test vectors of certificates of fulfilment
// (package vectors) into a folder, docs/spec/vectors in the repository:
//
//	go run ./pkg/proof/vectors/cmd/vectors -out docs/spec/vectors
//
// (`make vectors`). It writes the same bytes on every run, and removes the
// files of an earlier run that are no longer made.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/lethe-dev/lethe/pkg/proof/vectors"
)

func main() {
	out := flag.String("out", "", "the folder to write the vectors into (docs/spec/vectors)")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: vectors -out DIR")
		os.Exit(2)
	}
	n, removed, err := vectors.Write(*out)
	for _, name := range removed {
		fmt.Printf("vectors: removed %s, no longer made\n", name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vectors:", err)
		os.Exit(1)
	}
	fmt.Printf("vectors: wrote %d files to %s\n", n, *out)
}

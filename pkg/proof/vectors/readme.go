package vectors

import (
	"fmt"
	"strings"
)

// readmeHead is the README's text before its list of vectors.
const readmeHead = `# Test vectors of certificates of fulfilment

Certificates of every kind the orchestrator issues, each with its keys,
and invalid variants, each with the error a verifier must report: for a
verifier of certificates written in another language to be checked
against the Go one (` + "`proof.Verify`" + `, which ` + "`lethectl verify`" + ` runs).

**Every file here is generated: do not edit it.** ` + "`make vectors`" + ` writes
them (` + "`go run ./pkg/proof/vectors/cmd/vectors -out docs/spec/vectors`" + `,
from pkg/proof/vectors), the same bytes on every run: the keys are made
from a seed phrase, the times are fixed. ` + "`make test`" + ` runs the test of
pkg/proof/vectors, which makes them again and fails ("vectors drifted from
the code: run make vectors") when this folder differs by one byte, and
checks every vector below with the Go verifier.

## Files

- ` + "`index.json`" + `: every vector, in the order below, as
  ` + "`{\"file\", \"keys\", \"valid\", \"error\", \"description\", \"from\"}`" + `: the
  certificate, the keys file to verify it with, whether it verifies, and
  for one that does not, a part of the Go verifier's error (` + "`from`" + ` names
  the valid vector an invalid one was made from).
- ` + "`keys.json`" + `, ` + "`keys-rotation.json`" + `: keys files, as ` + "`GET /v1/keys`" + ` serves
  them and ` + "`lethectl keys export`" + ` saves them. Their keys are test keys:
  each ed25519 seed is the SHA-256 of a phrase and the key's owner
  (` + "`\"lethe test vectors/orchestrator\"`" + `, ...; see pkg/proof/vectors), so
  their private halves are public.
- ` + "`valid/*.json`" + `, ` + "`invalid/*.json`" + `: certificates as they are served (their
  one encoding and a newline).
- ` + "`valid/export-fulfilled.manifest.json`" + `: the export's bundle manifest,
  whose SHA-256 is the export certificate's ` + "`export_manifest_sha256`" + `.

## Checking a verifier

For each entry of index.json, verify ` + "`file`" + ` with ` + "`keys`" + `: a valid one
must verify; an invalid one must fail. A verifier that reports the Go
verifier's words finds ` + "`error`" + ` in its error; one that words its errors
otherwise at least fails each. Some invalid vectors have more than one
fault (the Go verifier reports all it finds); ` + "`error`" + ` is the one each is
made for. Each vector has a log of its own (another request's entries
first, so that its entries do not start at index 0); the checkpoints of
two vectors are not of one log.

What a verifier in another language must get right, which these vectors
exercise:

- The one encoding is Go's ` + "`encoding/json`" + ` output of the certificate: no
  whitespace; object fields in the format's order (docs/spec), empty
  optional fields left out; map keys (` + "`counts`" + `, ` + "`sweep.systems`" + `,
  ` + "`purposes.systems`" + `) sorted; ` + "`<`" + `, ` + "`>`" + ` and ` + "`&`" + ` escaped as ` + "`\\u003c`" + `,
  ` + "`\\u003e`" + `, ` + "`\\u0026`" + ` (and U+2028, U+2029 as ` + "`\\u2028`" + `, ` + "`\\u2029`" + `), other
  characters as they are (é, —); times in RFC 3339, UTC, with a fraction
  of a second only when there is one, without trailing zeros
  (` + "`09:32:07.019Z`" + `); bytes in standard base64 with padding; ` + "`\"systems\":null`" + `
  for a request no system took part in. A verifier re-encodes what it read
  and requires the same bytes (one trailing newline aside).
- Lenient base64 decoders ignore the unused bits of a final base64 digit:
  ` + "`invalid/signature-non-canonical-base64.json`" + `'s signature decodes to the
  right bytes, and verifies; only the re-encoding catches it.
- The certificate's signature is ed25519 over ` + "`lethe/certificate/v1`" + `, a NUL
  byte, and the certificate's encoding with ` + "`\"signature\":null`" + `; a
  version 2 checkpoint is a C2SP signed note whose key name is the log's
  origin (` + "`" + Origin + "`" + `).

## Vectors

`

// readme is the folder's README.md: readmeHead, then every vector.
func readme(index []Vector) []byte {
	var b strings.Builder
	b.WriteString(readmeHead)
	for _, valid := range []bool{true, false} {
		if valid {
			b.WriteString("### Valid: each verifies\n\n")
		} else {
			b.WriteString("\n### Invalid: each fails, saying what `error` says\n\n")
		}
		for _, v := range index {
			if v.Valid != valid {
				continue
			}
			fmt.Fprintf(&b, "- `%s`", v.File)
			if v.Keys != KeysFile {
				fmt.Fprintf(&b, " (keys: `%s`)", v.Keys)
			}
			if v.From != "" {
				fmt.Fprintf(&b, ", from `%s`", v.From)
			}
			fmt.Fprintf(&b, ": %s", v.Description)
			if !v.Valid {
				fmt.Fprintf(&b, " Error: `%s`", v.Error)
			}
			b.WriteString("\n")
		}
	}
	return []byte(b.String())
}

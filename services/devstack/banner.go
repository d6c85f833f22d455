package devstack

import (
	"fmt"
	"io"
)

// Banner tells a newcomer where everything is and what to type first.
func Banner(w io.Writer, s *Stack) {
	fmt.Fprintf(w, `
Lethe is running: embedded NATS JetStream, SQLite under %[1]s/, five connectors, %[2]d demo people
(person-0001@example.com ... in tenant "demo").

  API          %[3]s            (GET /healthz, /metrics, /v1/requests)
  console      %[3]s/console/   — sign in with the token in %[7]s
  admin token  %[7]s   (every call but /healthz needs it: Authorization: Bearer ...;
                                     lethectl reads it from there)
  NATS         %[4]s           (a user per part, no anonymous access: a connector binary
                                     joins with --nats %[4]s --data %[1]s/<system>,
                                     where its seed nats.seed is)
  accounts app %[5]s            (demo admin API: account deletion)
  vendors      %[6]s            (stand-in sub-processor APIs)

Erase a seeded person (identity already checked, so "verified": true):

  curl -s -X POST %[3]s/v1/requests -H 'content-type: application/json' \
    -H "authorization: Bearer $(cat %[7]s)" \
    -d '{"type":"erasure","tenant":"demo","subject":{"email":"person-0007@example.com"},"verified":true}'

or with the CLI, in another terminal:

  ./bin/lethectl submit --type erasure --tenant demo --email person-0007@example.com
  ./bin/lethectl confirm <id> --method document   # identity checked: the tasks go out
  ./bin/lethectl deny <id> --reason identity_not_established   # or refuse it (Art. 12(5))
  ./bin/lethectl wait <id>         # a live line per system until done
  ./bin/lethectl status <id>
  ./bin/lethectl extend <id> --reason "..."   # two more months (Art. 12(3)); the person is told

People with invoices end "partially_retained": billing keeps invoices 10 years by law, and Lethe
erases them on that date (./bin/lethectl list --state partially_retained).

Delete an account in the demo app and watch Lethe erase the rest:

  ./bin/lethectl demo delete-account person-0008@example.com

Tokens for people and programs (roles admin, dpo, intake, auditor; each bound to a tenant):

  ./bin/lethectl tokens create --tenant demo --role dpo --name privacy-team --expires 90d
`, s.cfg.DataDir, s.cfg.People, s.API, s.NATSURL, s.AccountsAPI, s.VendorURL, s.AdminTokenFile)
	if s.Witness != "" {
		fmt.Fprintf(w, `
A witness (lethe-witness, a process of its own, state in %[1]s/witness) cosigns the log's
checkpoints at %[2]s; certificates are issued on cosigned checkpoints only:

  curl -s %[3]s/log/checkpoint     # the log's latest checkpoint, with its cosignature
  ./bin/lethectl verify cert.json --keys keys.json --witness "$(cat %[1]s/witness/witness.vkey)"
`, s.cfg.DataDir, s.Witness, s.API)
	}
	fmt.Fprintf(w, "\nCtrl-C stops everything; the data stays under %[1]s/ (rm -rf %[1]s to start afresh).\n", s.cfg.DataDir)
}

// Command lethectl files and follows data-subject requests through the Lethe
// orchestrator's HTTP API: submit, confirm or deny, extend, status, list,
// wait, export, and a demo helper that deletes an account in the demo
// accounts system. It also handles proof: it downloads certificates of
// fulfilment, verifies them offline with the public keys alone, manages the
// keys file, and checks that the transparency log only grows
// (docs/certificates.md). An admin manages the API's tokens with it.
//
// Every call to the orchestrator carries a bearer token: --token, else
// LETHE_TOKEN, else the file data/admin.token in the working directory
// (where `make run` writes it). lethectl never prints a token but the one
// `tokens create` makes, that once.
package main

import (
	"os"
	_ "time/tzdata" // verify reads a tenant's time zone offline, also where the system has no zoneinfo
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Command lethectl files and follows data-subject requests through the Lethe
// orchestrator's HTTP API: submit, confirm, status, list, wait, export, and
// a demo helper that deletes an account in the demo accounts system.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

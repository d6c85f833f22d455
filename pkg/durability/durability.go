// Package durability names how far Lethe's stores take a write before they
// call it done: to the disk ([Strict], the default) or to the operating
// system's cache ([Fast]). Every binary that opens a store takes it as
// --durability (env LETHE_DURABILITY); each store turns it into its own
// setting:
//
//	                      strict                       fast
//	embedded JetStream    sync always (fsync per       sync every 2 minutes
//	                      write, before the ack)       (the server's default)
//	SQLite                synchronous=FULL             synchronous=NORMAL
//	PostgreSQL            synchronous_commit=on        synchronous_commit=off
//
// Either way a process that crashes loses nothing it acknowledged: the
// data is in the operating system's cache. Only a power loss or a kernel
// crash can take, in fast mode, the last seconds of acknowledged work.
//
// A NATS server of one's own syncs as its configuration says
// (sync_interval); the mode does not reach it.
package durability

import (
	"fmt"
	"strings"
)

// Mode is how far a write goes before it is acknowledged. The zero value
// is [Strict].
type Mode uint8

const (
	// Strict syncs every commit and every publish to the disk before it is
	// acknowledged: nothing acknowledged is lost, even on a power loss. It
	// costs an fsync per commit or publish.
	Strict Mode = iota
	// Fast leaves writes in the operating system's cache, for the engines to
	// sync later: a process crash loses nothing, a power loss may lose the
	// last seconds of acknowledged work.
	Fast
)

// EnvVar is the environment variable the --durability flags default to.
const EnvVar = "LETHE_DURABILITY"

// Allowed lists the modes [Parse] takes, for flags' help and errors.
const Allowed = "strict or fast"

// Parse reads a mode's name: "strict" or "fast" (in any case). Anything
// else is an error that names the allowed values.
func Parse(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "strict":
		return Strict, nil
	case "fast":
		return Fast, nil
	}
	return Strict, fmt.Errorf("unknown durability %q: want %s", s, Allowed)
}

// String is the mode's name, as [Parse] reads it.
func (m Mode) String() string {
	switch m {
	case Strict:
		return "strict"
	case Fast:
		return "fast"
	}
	return fmt.Sprintf("durability.Mode(%d)", uint8(m))
}

// IsFast reports whether m is [Fast]. Stores sync fully for any other
// value: an unknown mode errs on the side of the disk.
func (m Mode) IsFast() bool { return m == Fast }

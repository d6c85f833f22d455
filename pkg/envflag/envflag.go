// Package envflag lets flags take their defaults from the environment:
//
//	addr := fs.String("listen", envflag.Or("LETHE_LISTEN", ":8080"), "... (env LETHE_LISTEN)")
//
// so that a flag given on the command line wins over the environment, and
// the environment over the built-in default.
package envflag

import "os"

// Or is the value of the environment variable name, or def when it is unset
// or empty. Flags take their defaults from the environment through it.
func Or(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Package busadapter is for authors of [bus] adapters, not for their users:
// the consume loop that rides out broker trouble ([Resume]) and the
// redaction of credentials in a broker URL ([RedactURL]).
package busadapter

import "strings"

// RedactURL replaces the credentials of every server in a broker URL
// ("nats://user:password@a:4222,nats://token@b:4222") with "***", for logs
// and errors. The whole user part goes: NATS puts tokens there.
func RedactURL(rawURL string) string {
	elems := strings.Split(rawURL, ",")
	for i, e := range elems {
		at := strings.LastIndex(e, "@")
		if at < 0 {
			continue
		}
		start := 0
		if j := strings.Index(e, "://"); j >= 0 && j < at {
			start = j + 3
		}
		elems[i] = e[:start] + "***" + e[at:]
	}
	return strings.Join(elems, ",")
}

package busurl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go/sasl/plain"
)

// Fuzz targets of the bus URL's parsing: parse, what Dial does before it
// dials anything. Nothing is dialed.

var urlSeeds = []string{
	"nats://127.0.0.1:4222",
	"nats://a:4222,nats://b:4222",
	"nats://a,b:4223, c",
	"NATS://[::1]:4222",
	"nats://user:secret@host",
	"nats://host:4222?tls=1",
	"nats://host?tls=0&tls_insecure_skip_verify=1",
	"nats://host?nkey_seed=nats.seed",
	"nats://host?creds=user.creds&nkey_seed=x",
	"kafka://host1:9092,host2:9092",
	"kafka://kafka-0:9093,kafka-1:9093?sasl=scram-sha-512&tls_ca=/etc/lethe/kafka-ca.pem",
	"kafka://lethe:p%40ss%2Cword@k:9093?sasl=plain&tls=1&retention=168h",
	"kafka://u:p@a,kafka://v:q@b?sasl=plain",
	"kafka://host?retention=-1h",
	"kafka://host?sasl=gssapi",
	"kafka://host/path",
	"kafka://host:99999",
	"kafka://host:0",
	"kafka://:9092",
	"kafka://,",
	"amqp://host",
	"host:4222",
	"",
	"nats://",
	"nats://host#frag",
	"nats://h%zz",
	"nats://u:p@h?nkey_seed=a&nkey_seed=b",
}

// isolate keeps the environment out of the parse: no seed or Kafka
// credentials from the machine running the fuzzer.
func isolate(f *testing.F) {
	for _, k := range []string{EnvNKeySeed, envKafkaUser, envKafkaPassword} {
		f.Setenv(k, "")
	}
}

// risky reports whether a URL names a file the fuzzer must not read:
// parameters (tls_ca=, nkey_seed=...) are files read at parse time, and
// one of /dev (an endless /dev/zero), /proc or a data directory (a seed
// file read is tightened to 0600) is no file to read at random. A name
// without a directory is read beside this test, harmlessly.
func risky(raw string) bool {
	for _, s := range []string{raw, unescapeLoosely(raw)} {
		for _, bad := range []string{"/dev", "/proc", "/sys", "/run", "/work", "/root", "/home", "/tmp", "/var", "..", "~"} {
			if strings.Contains(s, bad) {
				return true
			}
		}
	}
	return false
}

// unescapeLoosely decodes every %XX of s, leaving the rest as it is.
func unescapeLoosely(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// FuzzParse: any URL. parse never panics; what it accepts is a scheme it
// knows and servers each with a host and a port in 1-65535 that a client
// can dial (net.SplitHostPort reads them), no path, query or fragment
// (and, for Kafka, no credentials left on a server); and the servers it
// names, written as a URL again, parse to the same servers.
func FuzzParse(f *testing.F) {
	isolate(f)
	for _, s := range urlSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if risky(raw) {
			t.Skip()
		}
		tg, err := parse(raw, Options{})
		if err != nil {
			if tg != nil {
				t.Fatal("parse returned a target with its error")
			}
			return
		}
		if _, ok := defaultPorts[tg.scheme]; !ok || len(tg.servers) == 0 {
			t.Fatalf("accepted scheme %q with %d servers", tg.scheme, len(tg.servers))
		}
		var again []string
		for _, u := range tg.servers {
			n, err := strconv.Atoi(u.Port())
			switch {
			case u.Hostname() == "":
				t.Fatalf("accepted a server without a host: %q", u)
			case err != nil || n < 1 || n > 65535:
				t.Fatalf("accepted a server with port %q", u.Port())
			case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
				t.Fatalf("accepted a server with a path, query or fragment: %q", u)
			case tg.scheme == "kafka" && u.User != nil:
				t.Fatal("a Kafka server keeps credentials of its own")
			case u.Scheme != tg.scheme:
				t.Fatalf("server %q of a %s URL", u, tg.scheme)
			}
			// The address a client dials: host and port, as net reads them.
			if h, p, err := net.SplitHostPort(u.Host); err != nil || h != u.Hostname() || p != u.Port() {
				t.Fatalf("accepted server %q, whose address %q is no host:port (%v)", raw, u.Host, err)
			}
			c := *u
			c.User = nil
			again = append(again, c.String())
		}
		if tg.kafka.retention < 0 {
			t.Fatalf("retention %s", tg.kafka.retention)
		}
		rt, err := parse(strings.Join(again, ","), Options{})
		if err != nil {
			t.Fatalf("the servers of %q, written as %q, do not parse: %v", raw, strings.Join(again, ","), err)
		}
		if len(rt.servers) != len(tg.servers) {
			t.Fatalf("%q: %d servers, written again %d", raw, len(tg.servers), len(rt.servers))
		}
		for i, u := range rt.servers {
			if u.Host != tg.servers[i].Host {
				t.Fatalf("%q: server %d is %q, written again %q", raw, i, tg.servers[i].Host, u.Host)
			}
		}
	})
}

// FuzzParseCredentials: a URL with a password, scheme://user:PASSWORD@rest,
// whatever user and rest are. No error ever repeats the password; and a
// URL accepted with credentials (rest holding no other '@') passes them on
// as given: the NATS user, or Kafka's SASL PLAIN mechanism.
func FuzzParseCredentials(f *testing.F) {
	isolate(f)
	for _, s := range [][3]string{
		{"nats", "lethe", "host:4222"},
		{"kafka", "lethe", "k1:9092,k2:9092?sasl=plain"},
		{"kafka", "lethe", "k1:9092?sasl=scram-sha-256&tls=1"},
		{"kafka", "lethe", "k1:9092"},
		{"nats", "u", "host?nkey_seed=x"},
		{"nats", "u", "host,other"},
		{"kafka", "u", "host/path"},
		{"kafka", "u", "host:99999?sasl=plain"},
		{"nats", "", "h%zz"},
		{"kafka", "u", "a,kafka://v:other@b?sasl=plain"},
	} {
		f.Add(s[0] == "kafka", s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, kafka bool, user, rest string) {
		scheme := "nats"
		if kafka {
			scheme = "kafka"
		}
		sum := sha256.Sum256([]byte(user + "\x00" + rest))
		password := "Pw" + hex.EncodeToString(sum[:6]) // in no input, nor in any message of parse's
		raw := scheme + "://" + escapeAll(user) + ":" + password + "@" + rest
		if risky(raw) {
			t.Skip()
		}
		tg, err := parse(raw, Options{})
		if err != nil {
			if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(password)) {
				t.Fatalf("the error repeats the password of %q:\n%v", raw, err)
			}
			return
		}
		if strings.Contains(rest, "@") {
			return // the credentials are others (rest's own, or up to its last '@')
		}
		if !kafka {
			u := tg.servers[0].User
			if u == nil {
				t.Fatalf("%q: the credentials are lost", raw)
			}
			if p, _ := u.Password(); u.Username() != user || p != password {
				t.Fatalf("%q: the credentials are %q, not the ones given", raw, u)
			}
			return
		}
		if m, ok := tg.kafka.sasl.(plain.Mechanism); ok && (m.Username != user || m.Password != password) {
			t.Fatalf("%q: SASL PLAIN as %q, not as the user given", raw, m.Username)
		}
	})
}

// escapeAll percent-encodes every byte of s but letters and digits.
func escapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

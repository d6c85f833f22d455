// Package busurl connects to the broker a URL names, so that every service
// takes one --bus flag (or LETHE_BUS): "nats://host:4222" for NATS
// JetStream, "kafka://host1:9092,host2:9092" for Kafka. Several servers are
// separated by commas, with or without the scheme repeated
// ("nats://a:4222,nats://b:4222"); a missing port is the broker's usual
// one. Credentials in a NATS URL ("nats://user:password@host") are passed
// to the server and never appear in an error.
package busurl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/busadapter"
	"github.com/lethe-dev/lethe/pkg/bus/kafkabus"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
)

// Options are what every adapter takes.
type Options struct {
	// Name is the client name the broker shows ("lethe-orchestrator").
	Name string
	// Prefix starts every subject, stream, topic and group name; empty
	// means the adapter's default, "lethe".
	Prefix string
	Logger *slog.Logger
}

// Schemes and their default ports.
var defaultPorts = map[string]string{"nats": "4222", "kafka": "9092"}

// Dial connects to the broker rawURL names, waiting for it with backoff
// until the adapter's connect timeout or ctx ends. A URL that cannot be
// right is refused before any connection, with an error that says what is
// wrong.
func Dial(ctx context.Context, rawURL string, opts Options) (bus.Bus, error) {
	scheme, servers, err := parse(rawURL)
	if err != nil {
		return nil, err
	}
	switch scheme {
	case "nats":
		urls := make([]string, len(servers))
		for i, u := range servers {
			urls[i] = u.String()
		}
		b, err := natsbus.Connect(ctx, strings.Join(urls, ","), natsbus.Config{Name: opts.Name, Prefix: opts.Prefix, Logger: opts.Logger})
		if err != nil {
			return nil, fmt.Errorf("busurl: %w", err)
		}
		return b, nil
	default: // kafka
		brokers := make([]string, len(servers))
		for i, u := range servers {
			brokers[i] = u.Host
		}
		b, err := kafkabus.Connect(ctx, brokers, kafkabus.Config{Name: opts.Name, Prefix: opts.Prefix, Logger: opts.Logger})
		if err != nil {
			return nil, fmt.Errorf("busurl: %w", err)
		}
		return b, nil
	}
}

const want = "want nats://host:4222 or kafka://host1:9092,host2:9092"

// parse checks rawURL and returns its scheme and servers, each with a port.
func parse(rawURL string) (scheme string, servers []*url.URL, err error) {
	raw := strings.TrimSpace(rawURL)
	if raw == "" {
		return "", nil, errors.New("busurl: no bus URL given: " + want)
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", nil, fmt.Errorf("busurl: %q has no scheme: %s", busadapter.RedactURL(raw), want)
	}
	scheme = strings.ToLower(scheme)
	port, ok := defaultPorts[scheme]
	if !ok {
		return "", nil, fmt.Errorf("busurl: unknown scheme %q: %s", scheme, want)
	}
	elems := strings.Split(rest, ",")
	for i, elem := range elems {
		where := "server"
		if len(elems) > 1 {
			where = fmt.Sprintf("server %d of %d", i+1, len(elems))
		}
		elem = strings.TrimSpace(elem)
		if s, r, ok := strings.Cut(elem, "://"); ok {
			if !strings.EqualFold(s, scheme) {
				return "", nil, fmt.Errorf("busurl: %s has scheme %q, the URL starts with %q", where, s, scheme)
			}
			elem = r
		}
		if elem == "" || elem == "/" {
			if len(elems) == 1 {
				return "", nil, fmt.Errorf("busurl: %q has no host: %s", busadapter.RedactURL(raw), want)
			}
			return "", nil, fmt.Errorf("busurl: %s is empty: %s", where, want)
		}
		// Credentials are taken apart first, so that no error about the
		// rest can quote them.
		var user *url.Userinfo
		if at := strings.LastIndex(elem, "@"); at >= 0 {
			name, pass, hasPass := strings.Cut(elem[:at], ":")
			name, err1 := url.PathUnescape(name)
			pass, err2 := url.PathUnescape(pass)
			if err1 != nil || err2 != nil {
				return "", nil, fmt.Errorf("busurl: %s %s://***@%s: the credentials are not valid URL encoding", where, scheme, elem[at+1:])
			}
			user = url.User(name)
			if hasPass {
				user = url.UserPassword(name, pass)
			}
			elem = elem[at+1:]
		}
		u, err := url.Parse(scheme + "://" + elem)
		if err != nil {
			var ue *url.Error // its text repeats the URL
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return "", nil, fmt.Errorf("busurl: %s %s: %v", where, busadapter.RedactURL(scheme+"://"+elem), err)
		}
		u.User = user
		shown := busadapter.RedactURL(u.String())
		switch {
		case u.Hostname() == "":
			return "", nil, fmt.Errorf("busurl: %s %s: no host: %s", where, shown, want)
		case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
			return "", nil, fmt.Errorf("busurl: %s %s: a bus URL has no path or query", where, shown)
		case scheme == "kafka" && u.User != nil:
			return "", nil, fmt.Errorf("busurl: %s %s: credentials in a kafka URL are not supported", where, shown)
		}
		if p := u.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return "", nil, fmt.Errorf("busurl: %s %s: bad port %q: want 1-65535", where, shown, p)
			}
		} else {
			u.Host = net.JoinHostPort(u.Hostname(), port)
		}
		u.Path = ""
		servers = append(servers, u)
	}
	return scheme, servers, nil
}

// Package natsauth says, in one place, who may do what on NATS: each Lethe
// service connects as its own NKey user, allowed only its part of the
// subjects, and nobody else gets in.
//
//	orchestrator   publishes tasks, dead letters and notices; consumes
//	               receipts, account.deleted events and notices'
//	               acknowledgements; makes the streams
//	connector X    consumes its own tasks (<prefix>.task.X) only; publishes
//	               receipts; "accounts" also publishes account.deleted
//	mailer         consumes notices to data subjects and publishes its
//	               acknowledgements (services/mailer, or one of your own)
//
// Besides those subjects a user may use only the JetStream API calls its
// part needs, on its own streams and durable consumers (stream info, the
// consumer's create with its one filter subject, pull, ack; the
// orchestrator also creates streams), and read only its own inbox,
// "_INBOX.<its public key>" ([natsbus.InboxPrefix]): nobody can read
// another service's pulled messages or publish acks.
//
// [Ensure] makes each user's seed once, in <root>/<name>/nats.seed (0600,
// folders 0700), and reads them back after; a connector started with
// --data <root>/<system> finds its own there. The [Set] it returns gives
// the embedded server its users ([Set.ServerUsers]) and an external
// nats-server the authorization block of its configuration file
// ([Set.ServerConfig]). A seed is a secret: it never appears in a log or
// an error.
package natsauth

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
	"github.com/lethe-dev/lethe/pkg/datadir"
	"github.com/lethe-dev/lethe/pkg/events"
)

// Users that are not connectors.
const (
	Orchestrator = "orchestrator"
	Mailer       = "mailer"
)

// SeedFile is the name of a user's seed file in its folder.
const SeedFile = "nats.seed"

// Consumer groups, as the services name them: the durable consumers
// their users may create and pull from are named after them
// ([natsbus.ConsumerName]).
const (
	// OrchestratorGroup is the group of the orchestrator's consumers
	// (services/orchestrator, relay.go).
	OrchestratorGroup = "orchestrator"
	// MailerGroup is the group a mailer consumes notices as.
	MailerGroup = "mailer"
)

// ConnectorGroup is the group a system's connector consumes its tasks as
// (pkg/connector, run.go).
func ConnectorGroup(system string) string { return "connector-" + system }

// Kinds are the kinds of topic, one stream each; the orchestrator makes
// them all at its start.
var Kinds = []string{"task", "receipt", "event", "notice", "dead"}

// DefaultAccountEvents are the systems that publish account.deleted.
var DefaultAccountEvents = []string{"accounts"}

// Config says which users there are.
type Config struct {
	// Prefix starts every subject and stream name; "" is "lethe".
	Prefix string
	// Systems are the connectors' systems, one user each.
	Systems []string
	// AccountEvents are the systems that may publish account.deleted
	// events; nil: those of [DefaultAccountEvents] that are in Systems.
	AccountEvents []string
}

func (c Config) withDefaults() (Config, error) {
	if c.Prefix == "" {
		c.Prefix = "lethe"
	}
	if err := (natsbus.Config{Prefix: c.Prefix}).Validate(); err != nil {
		return c, fmt.Errorf("natsauth: %w", err)
	}
	if len(c.Systems) == 0 {
		return c, errors.New("natsauth: no systems")
	}
	seen := map[string]bool{}
	for _, s := range c.Systems {
		switch _, err := bus.Kind(events.TaskTopic(s)); {
		case err != nil || strings.Contains(s, "."):
			return c, fmt.Errorf("natsauth: system %q: want letters, digits, '-' and '_'", s)
		case s == Orchestrator || s == Mailer:
			return c, fmt.Errorf("natsauth: system %q: the name of another user", s)
		case seen[s]:
			return c, fmt.Errorf("natsauth: system %q given twice", s)
		}
		seen[s] = true
	}
	if c.AccountEvents == nil {
		for _, s := range DefaultAccountEvents {
			if seen[s] {
				c.AccountEvents = append(c.AccountEvents, s)
			}
		}
	}
	for _, s := range c.AccountEvents {
		if !seen[s] {
			return c, fmt.Errorf("natsauth: %q publishes account events but is not among the systems", s)
		}
	}
	return c, nil
}

// Names are the users of cfg: the orchestrator, each system, the mailer.
func Names(cfg Config) []string {
	return append(append([]string{Orchestrator}, cfg.Systems...), Mailer)
}

// Permissions are what the user name (the orchestrator, a system, the
// mailer) may publish and subscribe to, when it connects with the NKey
// whose public key is given.
func Permissions(cfg Config, name, publicKey string) (*server.Permissions, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if !nkeys.IsValidPublicUserKey(publicKey) {
		return nil, fmt.Errorf("natsauth: %s: not a user's public key", name)
	}
	p := perms{prefix: cfg.Prefix}
	switch {
	case name == Orchestrator:
		for _, kind := range Kinds {
			stream := natsbus.StreamName(cfg.Prefix, kind)
			p.pub("$JS.API.STREAM.INFO."+stream, "$JS.API.STREAM.CREATE."+stream)
		}
		p.publish("task.>")
		p.publish("dead.>")
		p.publish("notice.>")
		p.consume(OrchestratorGroup, events.TopicReceipts)
		p.consume(OrchestratorGroup, events.TopicAccountDeleted)
		p.consume(OrchestratorGroup, events.TopicNoticeDelivered)
	case name == Mailer:
		p.consume(MailerGroup, events.TopicNotices)
		p.publish(events.TopicNoticeDelivered)
	case slices.Contains(cfg.Systems, name):
		p.consume(ConnectorGroup(name), events.TaskTopic(name))
		p.publish("receipt.>")
		if slices.Contains(cfg.AccountEvents, name) {
			p.publish(events.TopicAccountDeleted)
		}
	default:
		return nil, fmt.Errorf("natsauth: no user %q: want %s", name, strings.Join(Names(cfg), ", "))
	}
	// JetStream answers (publish acks, pulled messages, API replies) come
	// to the client's inbox, its own only.
	p.sub = []string{natsbus.InboxPrefix(publicKey) + ".>"}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: p.pubs},
		Subscribe: &server.SubjectPermission{Allow: p.sub},
	}, nil
}

// perms gathers a user's subjects.
type perms struct {
	prefix    string
	pubs, sub []string
}

func (p *perms) pub(subjects ...string) {
	for _, s := range subjects {
		if !slices.Contains(p.pubs, s) {
			p.pubs = append(p.pubs, s)
		}
	}
}

// publish allows publishing to a topic pattern ("receipt.>") of one kind,
// and the stream's info, which the adapter reads before its first publish.
func (p *perms) publish(topic string) {
	kind, _, _ := strings.Cut(topic, ".")
	p.pub(p.prefix+"."+topic, "$JS.API.STREAM.INFO."+natsbus.StreamName(p.prefix, kind))
}

// consume allows what a group's durable pull consumer of a topic needs:
// the stream's info, creating the consumer (named after the group, with
// the topic as its one filter subject: the server checks the filter in
// the subject is the one in the request), pulling from it, and acking
// (ack, nak, in-progress, term: to the reply subject of each message).
func (p *perms) consume(group, topic string) {
	kind, _, _ := strings.Cut(topic, ".")
	stream := natsbus.StreamName(p.prefix, kind)
	durable := natsbus.ConsumerName(group, topic)
	p.pub("$JS.API.STREAM.INFO."+stream,
		"$JS.API.CONSUMER.CREATE."+stream+"."+durable+"."+p.prefix+"."+topic,
		"$JS.API.CONSUMER.MSG.NEXT."+stream+"."+durable,
		"$JS.ACK."+stream+"."+durable+".>")
}

// User is one service's NATS identity.
type User struct {
	Name string
	// Public is the public key ("U..."), which the server knows the user by.
	Public string
	// SeedPath is the file of the seed, the secret the client signs with.
	SeedPath    string
	Permissions *server.Permissions
}

// Set is the users of a configuration.
type Set struct {
	Config Config
	Users  []User
	// Created names the users whose seeds were made by the call.
	Created []string
}

// Ensure reads each user's seed from <root>/<name>/nats.seed, making the
// seeds that do not exist yet (0600; the folders 0700), and returns the
// users with their permissions.
func Ensure(root string, cfg Config) (*Set, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	set := &Set{Config: cfg}
	for _, name := range Names(cfg) {
		path := SeedPath(root, name)
		pub, made, err := ensureSeed(path)
		if err != nil {
			return nil, err
		}
		if made {
			set.Created = append(set.Created, name)
		}
		perms, err := Permissions(cfg, name, pub)
		if err != nil {
			return nil, err
		}
		set.Users = append(set.Users, User{Name: name, Public: pub, SeedPath: path, Permissions: perms})
	}
	return set, nil
}

// SeedPath is where Ensure keeps the seed of user name under root.
func SeedPath(root, name string) string { return filepath.Join(root, name, SeedFile) }

// ensureSeed reads the seed at path, or makes it; it returns its public key.
func ensureSeed(path string) (pub string, made bool, err error) {
	if err := datadir.Ensure(filepath.Dir(path)); err != nil {
		return "", false, fmt.Errorf("natsauth: %w", err)
	}
	seed, err := ReadSeed(path)
	if err == nil {
		pub, err := natsbus.PublicKey(seed)
		return pub, false, err
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", false, fmt.Errorf("natsauth: new NKey: %w", err)
	}
	defer kp.Wipe()
	if seed, err = kp.Seed(); err != nil {
		return "", false, fmt.Errorf("natsauth: new NKey: %w", err)
	}
	if pub, err = kp.PublicKey(); err != nil {
		return "", false, fmt.Errorf("natsauth: new NKey: %w", err)
	}
	// Written whole to a file of its own, then linked into place: a
	// process reading it (a connector starting with the orchestrator)
	// never sees half a seed, and of two processes making it at once, one
	// makes it and the other reads it.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+SeedFile+"-*")
	if err != nil {
		return "", false, fmt.Errorf("natsauth: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(seed, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), datadir.FileMode) // CreateTemp's 0600, said plainly
	}
	if err != nil {
		return "", false, fmt.Errorf("natsauth: write %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return ensureSeed(path)
	} else if err != nil {
		return "", false, fmt.Errorf("natsauth: %w", err)
	}
	return pub, true, nil
}

// ReadSeed reads a user's NKey seed from a file (the seed alone, as Ensure
// writes it, or an nk/nsc file where it is a line of its own); a file the
// data directory's rules say is too open is tightened to 0600. An error
// never quotes the file's content.
func ReadSeed(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("natsauth: NKey seed: %w", err)
	}
	seed, err := ParseSeed(b)
	if err != nil {
		return nil, fmt.Errorf("natsauth: %s: %w", path, err)
	}
	if err := datadir.Tighten(path); err != nil {
		return nil, fmt.Errorf("natsauth: %w", err)
	}
	return seed, nil
}

// ParseSeed finds a user's NKey seed ("SU...") in b: b itself, or a line
// of b. An error never quotes b.
func ParseSeed(b []byte) ([]byte, error) {
	for line := range bytes.Lines(b) {
		line = bytes.TrimSpace(line)
		if !bytes.HasPrefix(line, []byte("SU")) {
			continue
		}
		if _, err := natsbus.PublicKey(line); err != nil {
			return nil, errors.New("not a valid NKey user seed")
		}
		return bytes.Clone(line), nil
	}
	return nil, errors.New("no NKey user seed (a line starting with SU)")
}

// ServerUsers are the users as the embedded server takes them.
func (s *Set) ServerUsers() []*server.NkeyUser {
	users := make([]*server.NkeyUser, len(s.Users))
	for i, u := range s.Users {
		users[i] = &server.NkeyUser{Nkey: u.Public, Permissions: u.Permissions}
	}
	return users
}

// Names are the users' names, in order.
func (s *Set) Names() []string {
	names := make([]string, len(s.Users))
	for i, u := range s.Users {
		names[i] = u.Name
	}
	return names
}

// ServerConfig is the authorization block of a nats-server configuration
// file with the users, to include in the server's own ("include
// lethe-users.conf"). It holds public keys only. Without a no_auth_user,
// a client that does not authenticate as one of them is refused.
func (s *Set) ServerConfig() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Lethe's NATS users: one NKey per service, each allowed only its part.\n")
	fmt.Fprintf(&b, "# Prefix %q; systems %s.\n", s.Config.Prefix, strings.Join(s.Config.Systems, ", "))
	fmt.Fprintf(&b, "# Made by `orchestrator nats-config`: each service's seed is in <out>/<service>/%s.\n", SeedFile)
	fmt.Fprintf(&b, "# Public keys only, no secret. No other client gets in (no no_auth_user).\n")
	b.WriteString("authorization {\n  users = [\n")
	for _, u := range s.Users {
		fmt.Fprintf(&b, "    # %s\n", u.Name)
		fmt.Fprintf(&b, "    {\n      nkey: %s\n      permissions: {\n", strconv.Quote(u.Public))
		writeList(&b, "publish", u.Permissions.Publish)
		writeList(&b, "subscribe", u.Permissions.Subscribe)
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.Bytes()
}

// writeList writes one permission list, each subject quoted: a bare $JS...
// would be read as a variable.
func writeList(b *bytes.Buffer, name string, sp *server.SubjectPermission) {
	fmt.Fprintf(b, "        %s: {\n          allow: [\n", name)
	for _, s := range sp.Allow {
		fmt.Fprintf(b, "            %s\n", strconv.Quote(s))
	}
	b.WriteString("          ]\n        }\n")
}

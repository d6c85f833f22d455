// Package busurl connects to the broker a URL names, so that every service
// takes one --bus flag (or LETHE_BUS): "nats://host:4222" for NATS
// JetStream, "kafka://host1:9092,host2:9092" for Kafka. Several servers are
// separated by commas, with or without the scheme repeated
// ("nats://a:4222,nats://b:4222"); a missing port is the broker's usual
// one. Credentials in a URL ("nats://user:password@host") are passed to
// the server and never appear in an error; a ',' or '%' in them must be
// percent-encoded (%2C, %25), other characters may be.
//
// A Kafka URL may end with parameters, for TLS, SASL and the retention of
// the topics the bus creates:
//
//	kafka://[user:password@]host1:9092[,host2:9092...][?name=value&...]
//
//	sasl=plain|scram-sha-256|scram-sha-512
//	    authenticates with SASL, as the user and password of the URL; what
//	    the URL lacks comes from the environment variables LETHE_KAFKA_USER
//	    and LETHE_KAFKA_PASSWORD (so that the password need not be in the
//	    URL). Credentials without sasl= are an error. PLAIN sends the
//	    password as it is: use it with TLS.
//	tls=1
//	    connects with TLS, verifying the brokers' certificates against the
//	    system's CAs. Any tls_ parameter implies it; tls=0 is plaintext.
//	tls_ca=/path/ca.pem
//	    verifies the brokers' certificates against the CA certificates
//	    (PEM) in the file instead.
//	tls_cert=/path/cert.pem&tls_key=/path/key.pem
//	    presents the client certificate and its key (PEM) to brokers that
//	    ask for one. Both or neither.
//	tls_insecure_skip_verify=1
//	    verifies no broker certificate: for tests only, it is logged.
//	retention=168h
//	    the retention.ms of the topics the bus creates (a Go duration;
//	    default 168h, at least 1m). They get cleanup.policy=delete too.
//
// For example "kafka://lethe@kafka-0:9093,kafka-1:9093?sasl=scram-sha-512&tls_ca=/etc/lethe/kafka-ca.pem"
// with LETHE_KAFKA_PASSWORD set.
//
// A NATS URL may end with parameters too, for its user and TLS:
//
//	nats://host1:4222[,host2:4222...][?name=value&...]
//
//	nkey_seed=/path/nats.seed
//	    connects as the NKey user whose seed ("SU...") is in the file
//	    (package natsauth makes one per service). Without it, the seed
//	    comes from LETHE_NATS_NKEY_SEED (the seed itself, or the path of
//	    its file), else from the service's default ([Options.NKeySeedFile]:
//	    a connector's <data>/nats.seed), unless the URL has credentials
//	    of another kind. The default one is dropped, with a warning, on a
//	    server without NKey users; a seed named here or in the variable
//	    is not.
//	creds=/path/user.creds
//	    a user credentials file (JWT and seed), for a server on
//	    decentralised (operator) auth.
//	tls=1, tls_ca=, tls_cert=, tls_key=, tls_insecure_skip_verify=1
//	    as for Kafka.
//
// User and password (nats://user:password@host), nkey_seed and creds are
// alternatives: one kind of credentials per URL.
//
// [Options] may give the TLS files instead (the --bus-tls-ca,
// --bus-tls-cert and --bus-tls-key flags), for either broker, but not as
// well as the URL. Any other parameter is an error naming these, and the
// files are read before any connection, so that a URL that cannot work
// fails at once. '@' in a parameter's value must be percent-encoded (%40).
package busurl

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/lethe-dev/lethe/pkg/bus"
	"github.com/lethe-dev/lethe/pkg/bus/busadapter"
	"github.com/lethe-dev/lethe/pkg/bus/kafkabus"
	"github.com/lethe-dev/lethe/pkg/bus/natsauth"
	"github.com/lethe-dev/lethe/pkg/bus/natsbus"
)

// Options are what every adapter takes.
type Options struct {
	// Name is the client name the broker shows ("lethe-orchestrator").
	Name string
	// Prefix starts every subject, stream, topic and group name; empty
	// means the adapter's default, "lethe".
	Prefix string
	// NKeySeedFile is the NATS user's seed file to use when neither the
	// URL nor LETHE_NATS_NKEY_SEED names credentials (a connector's
	// <data>/nats.seed, when it exists); "" is none.
	NKeySeedFile string
	// TLSCA, TLSCert and TLSKey are the TLS files (PEM) of the URL's
	// tls_ca, tls_cert and tls_key parameters, for either broker, given
	// apart (flags); a URL with tls parameters of its own and these is an
	// error.
	TLSCA, TLSCert, TLSKey string
	// Handlers is how many messages a Consume hands out at once on NATS
	// (natsbus.Config.Handlers; 0: ServiceHandlers). Kafka hands out a
	// partition's messages one at a time, in order.
	Handlers int
	Logger   *slog.Logger
}

// ServiceHandlers is how many messages a Lethe service handles at once
// by default: enough for the orchestrator's receipts and a connector's
// tasks to overlap their waits on the disk and be committed in groups.
const ServiceHandlers = 32

// Schemes and their default ports.
var defaultPorts = map[string]string{"nats": "4222", "kafka": "9092"}

// Dial connects to the broker rawURL names, waiting for it with backoff
// until the adapter's connect timeout or ctx ends. A URL that cannot be
// right is refused before any connection, with an error that says what is
// wrong.
func Dial(ctx context.Context, rawURL string, opts Options) (bus.Bus, error) {
	t, err := parse(rawURL, opts)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	switch t.scheme {
	case "nats":
		urls := make([]string, len(t.servers))
		for i, u := range t.servers {
			urls[i] = u.String()
		}
		n := t.nats
		if n.tls != nil && n.tls.InsecureSkipVerify {
			logger.Warn("nats: tls_insecure_skip_verify=1: the servers' certificates are not verified, for tests only")
		}
		if n.seed != nil {
			pub, _ := natsbus.PublicKey(n.seed) // checked by parse
			logger.Info("bus: connecting to NATS as an NKey user", "user", pub, "seed_from", n.seedFrom)
		}
		cfg := natsbus.Config{Name: opts.Name, Prefix: opts.Prefix, Logger: opts.Logger, NKeySeed: n.seed, CredsFile: n.creds, TLS: n.tls,
			Handlers: cmp.Or(opts.Handlers, ServiceHandlers)}
		b, err := natsbus.Connect(ctx, strings.Join(urls, ","), cfg)
		if errors.Is(err, nats.ErrNkeysNotSupported) && n.seedDefault {
			// A server without users (one of your own, as it was before
			// Lethe's users): the seed the service found by default is for
			// a server with them.
			logger.Warn("bus: the NATS server has no NKey users: connected without one (the service's seed is for a server with Lethe's users)", "seed", n.seedFrom)
			cfg.NKeySeed = nil
			b, err = natsbus.Connect(ctx, strings.Join(urls, ","), cfg)
		}
		if err != nil {
			return nil, fmt.Errorf("busurl: %w", err)
		}
		return b, nil
	default: // kafka
		brokers := make([]string, len(t.servers))
		for i, u := range t.servers {
			brokers[i] = u.Host
		}
		k := t.kafka
		if k.tls != nil && k.tls.InsecureSkipVerify {
			logger.Warn("kafka: tls_insecure_skip_verify=1: the brokers' certificates are not verified, for tests only")
		}
		if k.sasl != nil && k.sasl.Name() == "PLAIN" && k.tls == nil {
			logger.Warn("kafka: sasl=plain without TLS: the password travels as it is")
		}
		b, err := kafkabus.Connect(ctx, brokers, kafkabus.Config{
			Name:      opts.Name,
			Prefix:    opts.Prefix,
			Logger:    opts.Logger,
			TLS:       k.tls,
			SASL:      k.sasl,
			Retention: k.retention,
		})
		if err != nil {
			return nil, fmt.Errorf("busurl: %w", err)
		}
		return b, nil
	}
}

const want = "want nats://host:4222 or kafka://host1:9092,host2:9092"

// target is what a URL names.
type target struct {
	scheme  string
	servers []*url.URL // each with a port, without credentials for kafka
	kafka   kafkaParams
	nats    natsParams
}

// natsParams are what a NATS URL says besides its servers.
type natsParams struct {
	tls      *tls.Config // nil: plaintext, unless the server asks for TLS
	seed     []byte      // nil: no NKey
	seedFrom string      // where the seed came from, for the log
	// seedDefault says the seed is the service's default (Options), not
	// one the URL or the environment named.
	seedDefault bool
	creds       string // "": no credentials file
}

// EnvNKeySeed holds the NKey seed of the NATS user a service connects as,
// or the path of the file holding it, when the URL names none.
const EnvNKeySeed = "LETHE_NATS_NKEY_SEED"

// kafkaParams are what a Kafka URL says besides its servers.
type kafkaParams struct {
	tls       *tls.Config    // nil: plaintext
	sasl      sasl.Mechanism // nil: none
	retention time.Duration  // 0: the adapter's default
}

// Environment variables with the Kafka credentials a URL lacks.
const (
	envKafkaUser     = "LETHE_KAFKA_USER"
	envKafkaPassword = "LETHE_KAFKA_PASSWORD"
)

// parse checks rawURL and returns what it names, with the defaults of opts.
func parse(rawURL string, opts Options) (*target, error) {
	raw := strings.TrimSpace(rawURL)
	if raw == "" {
		return nil, errors.New("busurl: no bus URL given: " + want)
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("busurl: %q has no scheme: %s", busadapter.RedactURL(raw), want)
	}
	scheme = strings.ToLower(scheme)
	port, ok := defaultPorts[scheme]
	if !ok {
		return nil, fmt.Errorf("busurl: unknown scheme %q: %s", scheme, want)
	}
	// A URL's parameters follow its last server. They start at the first
	// '?' after the credentials, which end at the last '@': a '?' in a
	// password is not taken for them.
	var query string
	from := strings.LastIndex(rest, "@") + 1
	if q := strings.Index(rest[from:], "?"); q >= 0 {
		rest, query = rest[:from+q], rest[from+q+1:]
	}
	t := &target{scheme: scheme}
	var (
		kafkaUser *url.Userinfo
		userFrom  string
		natsUser  bool
	)
	elems := strings.Split(rest, ",")
	for i, elem := range elems {
		where := "server"
		if len(elems) > 1 {
			where = fmt.Sprintf("server %d of %d", i+1, len(elems))
		}
		elem = strings.TrimSpace(elem)
		if s, r, ok := strings.Cut(elem, "://"); ok {
			if !strings.EqualFold(s, scheme) {
				// s may hold credentials ("user:pw@host://..."): never quoted.
				return nil, fmt.Errorf("busurl: %s has scheme %q, the URL starts with %q", where, busadapter.RedactURL(s), scheme)
			}
			elem = r
		}
		if elem == "" || elem == "/" {
			if len(elems) == 1 {
				return nil, fmt.Errorf("busurl: %q has no host: %s", busadapter.RedactURL(raw), want)
			}
			return nil, fmt.Errorf("busurl: %s is empty: %s", where, want)
		}
		// Credentials are taken apart first, so that no error about the
		// rest can quote them.
		var user *url.Userinfo
		if at := strings.LastIndex(elem, "@"); at >= 0 {
			name, pass, hasPass := strings.Cut(elem[:at], ":")
			name, err1 := url.PathUnescape(name)
			pass, err2 := url.PathUnescape(pass)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("busurl: %s %s://***@%s: the credentials are not valid URL encoding", where, scheme, elem[at+1:])
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
			return nil, fmt.Errorf("busurl: %s %s: %v", where, busadapter.RedactURL(scheme+"://"+elem), err)
		}
		u.User = user
		shown := busadapter.RedactURL(u.String())
		switch {
		case u.Hostname() == "":
			return nil, fmt.Errorf("busurl: %s %s: no host: %s", where, shown, want)
		case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
			return nil, fmt.Errorf("busurl: %s %s: a bus URL has no path or query", where, shown)
		}
		if p := u.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("busurl: %s %s: bad port %q: want 1-65535", where, shown, p)
			}
		} else {
			u.Host = net.JoinHostPort(u.Hostname(), port)
		}
		// What a client dials: a host and a port, an IPv6 address in brackets.
		if _, _, err := net.SplitHostPort(u.Host); err != nil ||
			strings.Contains(u.Hostname(), ":") && net.ParseIP(strings.SplitN(u.Hostname(), "%", 2)[0]) == nil {
			return nil, fmt.Errorf("busurl: %s %s: bad host %q (an IPv6 address goes in brackets: [::1]:4222)", where, shown, u.Hostname())
		}
		u.Path = ""
		if scheme == "kafka" && u.User != nil {
			// One cluster, one user: given once, or the same each time.
			if kafkaUser != nil && kafkaUser.String() != u.User.String() {
				return nil, fmt.Errorf("busurl: %s and %s have different credentials: a Kafka cluster takes one user", userFrom, where)
			}
			kafkaUser, userFrom = u.User, where
			u.User = nil
		}
		natsUser = natsUser || u.User != nil
		t.servers = append(t.servers, u)
	}
	tlsFiles := map[string]string{"tls_ca": opts.TLSCA, "tls_cert": opts.TLSCert, "tls_key": opts.TLSKey}
	var err error
	if scheme == "kafka" {
		t.kafka, err = parseKafka(query, kafkaUser, tlsFiles)
	} else {
		t.nats, err = parseNATS(query, natsUser, tlsFiles, opts.NKeySeedFile)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

// natsParamNames are the parameters a NATS URL may have.
var natsParamNames = []string{"nkey_seed", "creds", "tls", "tls_ca", "tls_cert", "tls_key", "tls_insecure_skip_verify"}

// parseNATS reads the parameters of a NATS URL: hasUser says whether it had
// credentials; tlsFiles and seedFile are the defaults of [Options].
func parseNATS(query string, hasUser bool, tlsFiles map[string]string, seedFile string) (natsParams, error) {
	var p natsParams
	get, err := params("nats", query, natsParamNames)
	if err != nil {
		return p, err
	}
	if p.tls, err = parseTLS("nats", get, tlsFiles); err != nil {
		return p, err
	}
	var kinds []string
	if hasUser {
		kinds = append(kinds, "user:password@")
	}
	for _, name := range []string{"nkey_seed", "creds"} {
		if _, ok := get[name]; ok {
			kinds = append(kinds, name+"=")
		}
	}
	if len(kinds) > 1 {
		return p, fmt.Errorf("busurl: the nats URL has credentials of several kinds (%s): give one", strings.Join(kinds, ", "))
	}
	if path, ok := get["creds"]; ok {
		if _, err := os.Stat(path); err != nil {
			return p, fmt.Errorf("busurl: creds: %v", err)
		}
		p.creds = path
		return p, nil
	}
	if hasUser {
		return p, nil
	}
	path, ok := get["nkey_seed"]
	from := "nkey_seed="
	if !ok {
		if env := strings.TrimSpace(os.Getenv(EnvNKeySeed)); env != "" {
			if strings.HasPrefix(env, "SU") {
				seed, err := natsauth.ParseSeed([]byte(env))
				if err != nil {
					return p, fmt.Errorf("busurl: %s: %v", EnvNKeySeed, err)
				}
				p.seed, p.seedFrom = seed, EnvNKeySeed
				return p, nil
			}
			path, from = env, EnvNKeySeed
		} else if seedFile != "" {
			path, from = seedFile, ""
		}
	}
	if path == "" {
		return p, nil
	}
	seed, err := natsauth.ReadSeed(path)
	if err != nil {
		if from != "" {
			return p, fmt.Errorf("busurl: %s: %w", strings.TrimSuffix(from, "="), err)
		}
		return p, fmt.Errorf("busurl: %w", err)
	}
	p.seed, p.seedFrom, p.seedDefault = seed, path, from == ""
	return p, nil
}

// params reads the parameters of a URL of scheme: each a known name, given
// once, with a value.
func params(scheme, query string, names []string) (map[string]string, error) {
	values, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("busurl: %s URL parameters %q: %v", scheme, query, err)
	}
	get := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		vs := values[name]
		switch {
		case !slices.Contains(names, name):
			return nil, fmt.Errorf("busurl: unknown %s URL parameter %q: want %s", scheme, name, strings.Join(names, ", "))
		case len(vs) > 1:
			return nil, fmt.Errorf("busurl: %s URL parameter %s is given %d times", scheme, name, len(vs))
		case strings.TrimSpace(vs[0]) == "":
			return nil, fmt.Errorf("busurl: %s URL parameter %s has no value", scheme, name)
		}
		get[name] = strings.TrimSpace(vs[0])
	}
	return get, nil
}

// kafkaParamNames are the parameters a Kafka URL may have.
var kafkaParamNames = []string{"sasl", "tls", "tls_ca", "tls_cert", "tls_key", "tls_insecure_skip_verify", "retention"}

const saslWant = "want plain, scram-sha-256 or scram-sha-512"

// parseKafka reads the parameters of a Kafka URL, with the credentials it
// had (nil: none) and the TLS files of [Options]. No error quotes a
// password.
func parseKafka(query string, user *url.Userinfo, tlsFiles map[string]string) (kafkaParams, error) {
	var p kafkaParams
	get, err := params("kafka", query, kafkaParamNames)
	if err != nil {
		return p, err
	}

	if v, ok := get["retention"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("busurl: retention=%s: want a positive duration such as 168h", v)
		}
		p.retention = d
	}
	if p.tls, err = parseTLS("kafka", get, tlsFiles); err != nil {
		return p, err
	}

	// SASL.
	var name, password string
	var hasName, hasPassword bool
	if user != nil {
		name, hasName = user.Username(), user.Username() != ""
		password, hasPassword = user.Password()
	}
	// The environment's, where the URL has none (empty is none).
	if !hasName {
		name = os.Getenv(envKafkaUser)
		hasName = name != ""
	}
	if !hasPassword {
		password = os.Getenv(envKafkaPassword)
		hasPassword = password != ""
	}
	mech, ok := get["sasl"]
	if !ok {
		switch {
		case user != nil:
			return p, fmt.Errorf("busurl: the kafka URL has credentials but no sasl= parameter: %s", saslWant)
		case hasName || hasPassword:
			return p, fmt.Errorf("busurl: %s or %s is set but the kafka URL has no sasl= parameter: %s", envKafkaUser, envKafkaPassword, saslWant)
		}
		return p, nil
	}
	if name == "" || password == "" {
		return p, fmt.Errorf("busurl: sasl=%s needs a user and a password: in the URL (kafka://user:password@host) or in %s and %s", mech, envKafkaUser, envKafkaPassword)
	}
	var algo scram.Algorithm
	switch strings.ToLower(mech) {
	case "plain":
		p.sasl = plain.Mechanism{Username: name, Password: password}
		return p, nil
	case "scram-sha-256":
		algo = scram.SHA256
	case "scram-sha-512":
		algo = scram.SHA512
	default:
		return p, fmt.Errorf("busurl: sasl=%s: %s", mech, saslWant)
	}
	if p.sasl, err = scram.Mechanism(algo, name, password); err != nil {
		// Its text quotes the password.
		return p, fmt.Errorf("busurl: sasl=%s: the user or password has characters SCRAM refuses (SASLprep)", mech)
	}
	return p, nil
}

// parseTLS reads the TLS parameters of a URL (tls, tls_ca, tls_cert,
// tls_key, tls_insecure_skip_verify) and the TLS files given apart
// (flags: tls_ca, tls_cert, tls_key), which the URL must then not have;
// nil is plaintext.
func parseTLS(scheme string, get, files map[string]string) (*tls.Config, error) {
	var fromURL, fromFlags []string
	for _, name := range []string{"tls", "tls_ca", "tls_cert", "tls_key", "tls_insecure_skip_verify"} {
		if _, ok := get[name]; ok {
			fromURL = append(fromURL, name)
		}
	}
	for _, name := range []string{"tls_ca", "tls_cert", "tls_key"} {
		if files[name] != "" {
			fromFlags = append(fromFlags, "--bus-"+strings.ReplaceAll(name, "_", "-"))
		}
	}
	if len(fromURL) > 0 && len(fromFlags) > 0 {
		return nil, fmt.Errorf("busurl: TLS is set both in the %s URL (%s) and apart (%s): give it in one place",
			scheme, strings.Join(fromURL, ", "), strings.Join(fromFlags, ", "))
	}
	if len(fromFlags) > 0 {
		get = files
	}
	boolean := func(name string) (value, given bool, err error) {
		v, ok := get[name]
		if !ok || v == "" {
			return false, false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, true, fmt.Errorf("busurl: %s=%s: want 1 or 0", name, v)
		}
		return b, true, nil
	}
	useTLS, tlsGiven, err := boolean("tls")
	if err != nil {
		return nil, err
	}
	insecure, _, err := boolean("tls_insecure_skip_verify")
	if err != nil {
		return nil, err
	}
	var tlsParams []string
	for _, name := range []string{"tls_ca", "tls_cert", "tls_key"} {
		if get[name] != "" {
			tlsParams = append(tlsParams, name)
		}
	}
	if insecure {
		tlsParams = append(tlsParams, "tls_insecure_skip_verify=1")
	}
	if tlsGiven && !useTLS && len(tlsParams) > 0 {
		return nil, fmt.Errorf("busurl: tls=0 and %s contradict each other", strings.Join(tlsParams, ", "))
	}
	if !useTLS && len(tlsParams) == 0 {
		return nil, nil
	}
	return tlsConfig(get["tls_ca"], get["tls_cert"], get["tls_key"], insecure)
}

// tlsConfig makes the TLS configuration of a URL from its files.
func tlsConfig(caFile, certFile, keyFile string, insecure bool) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("busurl: tls_ca: %v", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("busurl: tls_ca: no PEM certificate in %s", caFile)
		}
	}
	switch {
	case certFile != "" && keyFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("busurl: tls_cert %s, tls_key %s: %v", certFile, keyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case certFile != "":
		return nil, errors.New("busurl: tls_cert needs tls_key")
	case keyFile != "":
		return nil, errors.New("busurl: tls_key needs tls_cert")
	}
	return c, nil
}

package subprocessors

import (
	"bytes"
	_ "embed" // the demo vendors file
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lethe-dev/lethe/pkg/bus/busurl"
	"github.com/lethe-dev/lethe/services/subprocessors/standin"
)

// DemoVendors is vendors.demo.yaml: the demo's vendors, all played by
// the stand-in server at {base}. It is built into the binary so that the
// connector runs from any directory.
//
//go:embed vendors.demo.yaml
var DemoVendors []byte

// Vendor is one sub-processor and how to reach its APIs. See
// vendors.demo.yaml for the file format and the template variables.
type Vendor struct {
	// Name is the vendor's name in receipts (the data category of its
	// counts) and the table of its rows in an export: lower case letters,
	// digits, '_' and '-'.
	Name string `yaml:"name"`
	// Delete is the deletion call: method DELETE (the default) or POST.
	Delete Request `yaml:"delete"`
	// Access is the optional access call (GET): 200 means the vendor holds
	// data of the subject, and its JSON body is that data (an object, an
	// array of objects or {"records": [objects]}: see vendors.demo.yaml);
	// 404 means it holds none.
	// Without it the connector cannot check what remains, nor export.
	Access Request `yaml:"access"`
	// DataCategory is the privacy policy's data category the vendor's
	// records belong to in an export (default [DefaultDataCategory]), in
	// snake_case. Only a vendor with an access API has records to file.
	DataCategory string `yaml:"data_category"`
	// Notify is the optional call that tells a vendor without an access API
	// that the subject asked for a copy of their data (GDPR Art. 15, 28(3)(e)):
	// method POST (the default) or PUT. Only for a vendor without Access.
	Notify Request `yaml:"notify"`
	Auth   Auth    `yaml:"auth"`
}

// DefaultDataCategory is the data category of a vendor's records when its
// configuration names none, and the category of the export's list of the
// vendors that could not be asked for the subject's data.
const DefaultDataCategory = "sub_processors"

// withoutExportTable is the table, in [DefaultDataCategory], that lists the
// vendors without an access API; no vendor may be named so.
const withoutExportTable = "vendors_without_export"

// Request is a templated HTTP call.
type Request struct {
	Method string `yaml:"method"`
	URL    string `yaml:"url"`
	// Body is a JSON body template, sent with Content-Type application/json.
	Body string `yaml:"body"`
}

// Auth says which header authenticates calls to a vendor and which
// environment variable holds its value; the secret is never in the file.
type Auth struct {
	Header string `yaml:"header"`
	// Scheme, if set, is put before the secret: "Bearer" gives
	// "Authorization: Bearer <secret>".
	Scheme string `yaml:"scheme"`
	Env    string `yaml:"env"`
}

// Config configures [Open].
type Config struct {
	// Vendors are the sub-processors to call; if empty, they are read from
	// VendorsYAML.
	Vendors     []Vendor
	VendorsYAML []byte
	// Vars are the template variables the caller supplies, such as "base"
	// for {base}; they are inserted into URLs as they are.
	Vars map[string]string
	// HTTPClient makes the calls; nil means a client of its own, which
	// keeps a connection per concurrent call to a vendor (see
	// [callsAtOnce]).
	HTTPClient *http.Client
	// Timeout bounds each call to a vendor (default 10s). A call that
	// times out is retried.
	Timeout time.Duration
	// Getenv looks up the vendors' secrets (default os.Getenv).
	Getenv func(string) string
}

// callsAtOnce is how many calls a connector makes to one vendor at most at
// once: one per task its handlers run, each calling the vendors one after
// another.
const callsAtOnce = busurl.ServiceHandlers

func (c *Config) setDefaults() {
	if c.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// The default keeps 2 idle connections per host: with a handler per
		// task, every call beyond the second opened a connection (and a TLS
		// handshake) and closed it after its answer.
		t.MaxIdleConnsPerHost = callsAtOnce
		c.HTTPClient = &http.Client{Transport: t}
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
}

// ParseVendors reads a vendors file (see vendors.demo.yaml). Unknown keys are
// errors, so that a misspelt key does not silently drop a setting.
func ParseVendors(b []byte) ([]Vendor, error) {
	var f struct {
		Vendors []Vendor `yaml:"vendors"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("subprocessors: vendors file: %w", err)
	}
	return f.Vendors, nil
}

// LoadConfig is the configuration of the connector binary: the vendors of
// the file at path or, if path is empty, the demo vendors, whose secrets
// default to the stand-in's demo token when their variable is unset.
func LoadConfig(path string, vars map[string]string) (Config, error) {
	if path == "" {
		return Config{VendorsYAML: DemoVendors, Vars: vars, Getenv: func(k string) string {
			if v := os.Getenv(k); v != "" {
				return v
			}
			return standin.DemoToken
		}}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("subprocessors: %w", err)
	}
	return Config{VendorsYAML: b, Vars: vars}, nil
}

// Values of the subject and task that templates may use; every other
// placeholder must be a caller's variable.
const (
	varEmail     = "email"
	varUserID    = "user_id"
	varTenant    = "tenant"
	varRequestID = "request_id"
	varDeadline  = "deadline" // the request's deadline, RFC 3339 UTC
)

// taskVars are the placeholders the task fills.
var taskVars = []string{varEmail, varUserID, varTenant, varRequestID, varDeadline}

var (
	placeholder  = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	vendorName   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	dataCategory = regexp.MustCompile(`^[a-z][a-z0-9_]*$`) // as pkg/dataset's
)

// vendor is a validated Vendor with its secret.
type vendor struct {
	Vendor
	vars       map[string]string
	authHeader string // header value, secret included
}

// compile validates the vendors against the caller's variables and reads
// their secrets. Every error names the vendor (never a secret).
func compile(vs []Vendor, vars map[string]string, getenv func(string) string) ([]vendor, error) {
	if len(vs) == 0 {
		return nil, errors.New("subprocessors: no vendors configured")
	}
	for k := range vars {
		if slices.Contains(taskVars, k) {
			return nil, fmt.Errorf("subprocessors: variable {%s} is the task's, not the caller's", k)
		}
	}
	seen := map[string]bool{}
	out := make([]vendor, 0, len(vs))
	for i, v := range vs {
		if v.Name == "" {
			return nil, fmt.Errorf("subprocessors: vendor #%d has no name", i+1)
		}
		fail := func(format string, a ...any) error {
			return fmt.Errorf("subprocessors: vendor %q: %s", v.Name, fmt.Sprintf(format, a...))
		}
		if !vendorName.MatchString(v.Name) {
			return nil, fail("name must be lower case letters, digits, '_' or '-'")
		}
		if v.Name == withoutExportTable {
			return nil, fail("the name is that of the export's list of vendors without an access API")
		}
		if seen[v.Name] {
			return nil, fail("listed twice")
		}
		seen[v.Name] = true

		if err := checkCall("delete", &v.Delete, vars, http.MethodDelete, http.MethodPost); err != nil {
			return nil, fail("%s", err)
		}
		if v.Access != (Request{}) && v.Access.URL == "" {
			return nil, fail("access.url is missing")
		}
		if v.Access.Method != "" && !strings.EqualFold(v.Access.Method, http.MethodGet) {
			return nil, fail("access.method %q: access is a GET", v.Access.Method)
		}
		v.Access.Method = http.MethodGet
		if v.Access.Body != "" {
			return nil, fail("access has a body: access is a GET")
		}
		if v.Access.URL != "" {
			if err := checkRequest(v.Access, vars); err != nil {
				return nil, fail("access: %v", err)
			}
		}

		switch {
		case v.DataCategory != "" && v.Access.URL == "":
			return nil, fail("data_category without access.url: a vendor without an access API has no records to file")
		case v.DataCategory == "":
			v.DataCategory = DefaultDataCategory
		case !dataCategory.MatchString(v.DataCategory):
			return nil, fail("data_category %q is not a snake_case name (lower case letters, digits and '_')", v.DataCategory)
		}

		if v.Notify != (Request{}) {
			if v.Access.URL != "" {
				return nil, fail("notify is for a vendor without an access API: this one is asked for the data")
			}
			if err := checkCall("notify", &v.Notify, vars, http.MethodPost, http.MethodPut); err != nil {
				return nil, fail("%s", err)
			}
		}

		c := vendor{Vendor: v, vars: vars}
		switch {
		case v.Auth.Header == "" && v.Auth.Env == "" && v.Auth.Scheme == "":
		case v.Auth.Header == "" || v.Auth.Env == "":
			return nil, fail("auth needs both header and env")
		default:
			secret := getenv(v.Auth.Env)
			if secret == "" {
				return nil, fail("environment variable %s (auth secret) is empty", v.Auth.Env)
			}
			c.authHeader = secret
			if v.Auth.Scheme != "" {
				c.authHeader = v.Auth.Scheme + " " + secret
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// checkRequest renders r with sample identifiers and checks that it makes an
// absolute http(s) URL and, if it has a body, valid JSON.
// checkCall checks a vendor call that changes something (delete, notify):
// its method, upper-cased, is one of methods (the first by default), and
// it has a URL whose template checkRequest takes. Errors name the call.
func checkCall(name string, r *Request, vars map[string]string, methods ...string) error {
	r.Method = strings.ToUpper(r.Method)
	if r.Method == "" {
		r.Method = methods[0]
	}
	if !slices.Contains(methods, r.Method) {
		return fmt.Errorf("%s.method %q: want %s", name, r.Method, strings.Join(methods, " or "))
	}
	if r.URL == "" {
		return fmt.Errorf("%s.url is missing", name)
	}
	if err := checkRequest(*r, vars); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func checkRequest(r Request, vars map[string]string) error {
	sample := map[string]string{varEmail: `o'brien+"test"@example.com`, varUserID: "user 1/2", varTenant: "demo",
		varRequestID: "req_1", varDeadline: "2026-01-02T03:04:05Z"}
	for _, tmpl := range []string{r.URL, r.Body} {
		for _, m := range placeholder.FindAllStringSubmatch(tmpl, -1) {
			if _, ok := sample[m[1]]; !ok {
				if _, ok := vars[m[1]]; !ok {
					return fmt.Errorf("unknown variable {%s}", m[1])
				}
			}
		}
	}
	u, err := url.Parse(render(r.URL, vars, sample, urlEscape))
	if err != nil {
		return errors.New("url does not parse") // the parse error would quote the URL
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("url is not an absolute http(s) URL")
	}
	if r.Body != "" && !json.Valid([]byte(render(r.Body, vars, sample, jsonEscape))) {
		return errors.New("body is not JSON")
	}
	return nil
}

// render fills a template: the caller's variables as they are, the task's
// values through escape. A placeholder without a value is left as it is.
func render(tmpl string, vars, task map[string]string, escape func(string) string) string {
	return placeholder.ReplaceAllStringFunc(tmpl, func(p string) string {
		name := p[1 : len(p)-1]
		if v, ok := task[name]; ok {
			return escape(v)
		}
		if v, ok := vars[name]; ok {
			return v
		}
		return p
	})
}

// urlEscape escapes a value for a path segment or a query value alike:
// QueryEscape leaves only unreserved characters, and its '+' for a space
// would be read as a plus in a path.
func urlEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// jsonEscape escapes a value for the inside of a JSON string.
func jsonEscape(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b[1 : len(b)-1])
}

func identity(s string) string { return s }

// Package retention reads the retention policies: per tenant, per purpose
// of processing, which systems hold data of which categories for it, how
// long it may be kept, what starts the clock, and on which legal basis.
// The orchestrator runs each policy as a sweep: a task per system to
// delete what is past its period (Art. 5(1)(e): storage limitation).
package retention

import (
	"bytes"
	_ "embed" // the demo policies
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/period"
)

// Policy is one purpose's retention rule in one tenant.
type Policy struct {
	// Name identifies the policy within its tenant: snake_case.
	Name   string `yaml:"name" json:"name"`
	Tenant string `yaml:"-" json:"tenant"`
	// Purpose and Data say, for people, what the data is kept for and
	// what it is.
	Purpose string `yaml:"purpose" json:"purpose"`
	Data    string `yaml:"data" json:"data,omitempty"`
	// LegalBasis is the ground of the processing (Art. 6); Consent that
	// it is the person's consent, which they may withdraw (Art. 7(3)).
	LegalBasis string `yaml:"legal_basis" json:"legal_basis"`
	Consent    bool   `yaml:"consent" json:"consent"`
	// Period is how long the data is kept after its clock starts.
	Period string `yaml:"period" json:"period"`
	// Clock is what starts the period: connector.ClockRecord,
	// ClockLastContact or ClockAccountEnd.
	Clock string `yaml:"clock" json:"clock"`
	// Systems maps each system to the data categories the policy covers
	// there.
	Systems map[string][]string `yaml:"systems" json:"systems"`

	period period.Period
	line   int
}

// Cutoff is the instant before which data of the policy is past its
// period, for a run at now.
func (p *Policy) Cutoff(now time.Time) time.Time { return p.period.Before(now) }

// SystemNames are the policy's systems, sorted.
func (p *Policy) SystemNames() []string {
	names := make([]string, 0, len(p.Systems))
	for s := range p.Systems {
		names = append(names, s)
	}
	sort.Strings(names)
	return names
}

// Policies are every tenant's policies.
type Policies struct {
	// List is every policy, by tenant then name.
	List []*Policy
	file string
}

// Of returns a tenant's policy by name, or nil.
func (ps *Policies) Of(tenant, name string) *Policy {
	if ps == nil {
		return nil
	}
	for _, p := range ps.List {
		if p.Tenant == tenant && p.Name == name {
			return p
		}
	}
	return nil
}

// Load reads a policies file; Parse reads its bytes, naming it file in
// errors.
func Load(path string) (*Policies, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	return Parse(path, b)
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Parse reads and validates policies. Every error names the file and the
// line of what is wrong.
func Parse(file string, b []byte) (*Policies, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	ps := &Policies{file: file}
	if len(doc.Content) == 0 {
		return ps, nil
	}
	root := doc.Content[0]
	fail := func(n *yaml.Node, format string, a ...any) error {
		return fmt.Errorf("%s:%d: %s", file, n.Line, fmt.Sprintf(format, a...))
	}
	if root.Kind != yaml.MappingNode {
		return nil, fail(root, "want a mapping with tenants:")
	}
	var tenants *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch k := root.Content[i]; k.Value {
		case "tenants":
			tenants = root.Content[i+1]
		default:
			return nil, fail(k, "unknown key %q (want tenants)", k.Value)
		}
	}
	if tenants == nil {
		return ps, nil
	}
	if tenants.Kind != yaml.MappingNode {
		return nil, fail(tenants, "tenants: want a mapping of tenant to its policies")
	}
	for i := 0; i+1 < len(tenants.Content); i += 2 {
		tenant, list := tenants.Content[i].Value, tenants.Content[i+1]
		if tenant == "" {
			return nil, fail(tenants.Content[i], "a tenant has no name")
		}
		if list.Kind != yaml.SequenceNode {
			return nil, fail(list, "tenant %q: want a list of policies", tenant)
		}
		for _, item := range list.Content {
			p := &Policy{}
			if err := decodeStrict(item, p); err != nil {
				return nil, fail(item, "tenant %q: %v", tenant, err)
			}
			p.Tenant, p.line = tenant, item.Line
			if err := p.validate(); err != nil {
				return nil, fail(item, "tenant %q, policy %q: %v", tenant, p.Name, err)
			}
			if ps.Of(tenant, p.Name) != nil {
				return nil, fail(item, "tenant %q: policy %q is defined twice", tenant, p.Name)
			}
			ps.List = append(ps.List, p)
		}
	}
	return ps, nil
}

// decodeStrict decodes a node refusing unknown keys: a misspelt key would
// otherwise be a rule silently not applied.
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	return dec.Decode(v)
}

func (p *Policy) validate() error {
	var err error
	switch {
	case !nameRE.MatchString(p.Name):
		return fmt.Errorf("name must be snake_case (lower case letters, digits, _)")
	case p.Purpose == "":
		return errors.New("no purpose: say what the data is kept for")
	case p.LegalBasis == "":
		return errors.New("no legal_basis")
	case !slices.Contains(connector.Clocks(), p.Clock):
		return fmt.Errorf("clock %q: want one of %v", p.Clock, connector.Clocks())
	case len(p.Systems) == 0:
		return errors.New("no systems: name the systems and the data categories the policy covers")
	}
	if p.period, err = period.Parse(p.Period); err != nil {
		return err
	}
	for sys, cats := range p.Systems {
		if len(cats) == 0 {
			return fmt.Errorf("system %q: no data categories", sys)
		}
		for _, c := range cats {
			if !nameRE.MatchString(c) {
				return fmt.Errorf("system %q: category %q is not snake_case", sys, c)
			}
		}
	}
	return nil
}

// Check refuses policies that name a system the orchestrator does not
// know, naming the line.
func (ps *Policies) Check(systems []string) error {
	for _, p := range ps.List {
		for sys := range p.Systems {
			if !slices.Contains(systems, sys) {
				return fmt.Errorf("%s:%d: tenant %q, policy %q: system %q is not registered (--systems)", ps.file, p.line, p.Tenant, p.Name, sys)
			}
		}
	}
	return nil
}

// Demo is the demo tenant's policies (demo.yaml), which make run uses.
//
//go:embed demo.yaml
var Demo []byte

// Package dataset is Lethe's SQL dataset engine: the way a company points
// Lethe at its own databases. A YAML map says, per system, which tables hold
// a person's data, how each table finds the subject (an email column, a user
// id column, a join to another table's key) and what erasure does to it
// (delete the row, null or hash columns, or retain the row by law). The
// [Engine] then erases and exports a subject over database/sql, in any
// [Dialect] it knows (SQLite, PostgreSQL), with no code per system.
//
// A map:
//
//	dialect: sqlite            # or postgres
//	tables:                    # a table may only join to one listed before it
//	  - name: users
//	    category: profile      # the category its records are counted under
//	    tenant: tenant         # the column holding the tenant
//	    subject: {email: email, user_id: id}
//	    strategy: delete
//	    clocks: {account_end: ended_at}   # when retention sweeps count from
//	  - name: logins
//	    category: login_history
//	    data_category: connection
//	    tenant: tenant
//	    join: {column: user_id, to: users.id}
//	    strategy: delete
//	    clocks: {record: at, account_end: users.ended_at}   # own column; through the join
//	  - name: invoices
//	    category: invoices
//	    tenant: tenant
//	    subject: {email: email, user_id: user_id}
//	    strategy: retain
//	    retain: {legal_basis: "Accounting law", period: 10y, from: issued_at}
//	    columns: {checkout_ip: set_null}   # erased even in a retained row
//	  - name: comments
//	    category: comments
//	    tenant: tenant
//	    subject: {user_id: author_id}
//	    columns: {author_id: hash, author_name: set_null}   # row kept, author erased
//
// Retention sweeps ([Engine.Sweep], a [connector.SweepTask]) erase, whoever
// they are about, the rows of some data categories whose clock is before a
// cut-off. A table's clocks say which column holds each clock a policy may
// run from (connector.Clocks: record, last_contact, account_end): its own,
// or "table.column" of the table its join goes to, as logins above end
// with the account they belong to. Times are compared as times (SQLite:
// julianday() of text in its date formats, RFC 3339 included; PostgreSQL:
// timestamptz, text cast to it); a NULL clock (an account not ended) keeps
// the row.
package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lethe-dev/lethe/pkg/connector"
	"github.com/lethe-dev/lethe/pkg/period"
)

// Strategy is what erasure does to a table's rows or to a column.
type Strategy string

// Strategies. Delete and Retain apply to a table, SetNull and Hash to a
// column.
const (
	// Delete deletes the subject's rows.
	Delete Strategy = "delete"
	// Retain keeps the subject's rows for a legal reason and a period; the
	// columns the table lists are still erased.
	Retain Strategy = "retain"
	// SetNull sets a column to NULL.
	SetNull Strategy = "set_null"
	// Hash replaces a column's value with its keyed hash
	// ([github.com/lethe-dev/lethe/pkg/pseudonym.Hash]), which keeps rows of
	// one person linked to each other without saying who the person is. The
	// column must hold text. In a retained table, whose rows a later erasure
	// finds again, the hash is hashed again then; prefer SetNull there.
	Hash Strategy = "hash"
)

// Map is a validated dataset map; build it with [Load].
type Map struct {
	// Dialect is the SQL dialect of the database; default SQLite.
	Dialect Dialect `yaml:"dialect"`
	// Tables are in dependency order: a table joins only to tables before it.
	Tables []Table `yaml:"tables"`
}

// Table says how one table holds the subject's data.
type Table struct {
	Name string `yaml:"name"`
	// Category names the table's records in receipt counts and exports.
	Category string `yaml:"category"`
	// DataCategory is the category of personal data the privacy policy
	// names the records under (account, identification, connection,
	// professional, billing, engagement, recordings, contributions): an
	// export groups the person's records by it. Default: Category.
	DataCategory string `yaml:"data_category"`
	// Tenant is the column holding the tenant; every table names one. Rows
	// are always matched within the task's tenant, those found through a
	// join too: a key may be unique only within a tenant (user "u1" of two
	// tenants), and matching by key alone would erase another tenant's rows.
	Tenant string `yaml:"tenant"`
	// Subject names the columns holding the subject's identifiers.
	Subject SubjectColumns `yaml:"subject"`
	// Join finds the table's rows through another table's key.
	Join *Join `yaml:"join"`
	// Strategy is Delete, Retain, or empty when only Columns are erased and
	// the rows stay.
	Strategy Strategy `yaml:"strategy"`
	// Retain explains a Retain strategy.
	Retain *RetainRule `yaml:"retain"`
	// Columns are erased (SetNull or Hash) in the rows that stay.
	Columns map[string]Strategy `yaml:"columns"`
	// Clocks say, per clock a retention policy runs from
	// ([connector.Clocks]: record, last_contact, account_end), which column
	// holds that time: a column of this table, or "table.column" of the
	// table its join goes to (an account's end, for the rows that belong to
	// it). A retention sweep of the clock erases the rows whose time is
	// before its cut-off; a row whose time is NULL is kept. A table with no
	// clock of a policy's clock cannot be swept by it; a retained table has
	// none (the law keeps it, its retain rule says until when).
	Clocks map[string]string `yaml:"clocks"`
}

// SubjectColumns names the columns of a table that hold the subject's email
// (matched case-insensitively after trimming) and user id.
type SubjectColumns struct {
	Email  string `yaml:"email"`
	UserID string `yaml:"user_id"`
}

// Join says that Column holds values of To ("table.column") of the
// subject's rows there.
type Join struct {
	Column string `yaml:"column"`
	To     string `yaml:"to"`

	table, column string
}

// RetainRule is why and how long rows are kept.
type RetainRule struct {
	LegalBasis string `yaml:"legal_basis"`
	// Period is how long after From rows are kept: a number and a unit,
	// y (years), m or mo (months), w (weeks), d (days): "10y", "13m".
	Period string `yaml:"period"`
	// From is the column with the date the period runs from.
	From string `yaml:"from"`

	period period.Period
}

// Load parses and validates a YAML map. Errors name the table and column at
// fault.
func Load(yamlBytes []byte) (*Map, error) {
	dec := yaml.NewDecoder(bytes.NewReader(yamlBytes))
	dec.KnownFields(true)
	m := &Map{}
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("dataset: parse map: %w", err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

var (
	identRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)
	columnRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	categoryRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

func (m *Map) validate() error {
	if m.Dialect == "" {
		m.Dialect = SQLite
	}
	if _, ok := dialects[m.Dialect]; !ok {
		return fmt.Errorf("dataset: unknown dialect %q (want sqlite or postgres)", m.Dialect)
	}
	if len(m.Tables) == 0 {
		return errors.New("dataset: the map lists no tables")
	}
	seen := map[string]bool{}
	for i := range m.Tables {
		t := &m.Tables[i]
		if !identRE.MatchString(t.Name) {
			return fmt.Errorf("dataset: table %d: bad table name %q", i+1, t.Name)
		}
		if seen[t.Name] {
			return fmt.Errorf("dataset: table %q is listed twice", t.Name)
		}
		if err := t.validate(seen); err != nil {
			return fmt.Errorf("dataset: table %q: %w", t.Name, err)
		}
		seen[t.Name] = true
	}
	return nil
}

func (t *Table) validate(earlier map[string]bool) error {
	if t.Category == "" {
		return errors.New("no category")
	}
	if !categoryRE.MatchString(t.Category) {
		return fmt.Errorf("category %q is not a snake_case name", t.Category)
	}
	if t.DataCategory == "" {
		t.DataCategory = t.Category
	}
	if !categoryRE.MatchString(t.DataCategory) {
		return fmt.Errorf("data_category %q is not a snake_case name", t.DataCategory)
	}
	for what, c := range map[string]string{"tenant": t.Tenant, "subject email": t.Subject.Email, "subject user_id": t.Subject.UserID} {
		if c != "" && !columnRE.MatchString(c) {
			return fmt.Errorf("%s column %q is not a column name", what, c)
		}
	}
	direct := t.Subject.Email != "" || t.Subject.UserID != ""
	if t.Join != nil {
		if !columnRE.MatchString(t.Join.Column) {
			return fmt.Errorf("join column %q is not a column name", t.Join.Column)
		}
		i := strings.LastIndexByte(t.Join.To, '.')
		if i <= 0 || !identRE.MatchString(t.Join.To[:i]) || !columnRE.MatchString(t.Join.To[i+1:]) {
			return fmt.Errorf("join to %q: want table.column", t.Join.To)
		}
		t.Join.table, t.Join.column = t.Join.To[:i], t.Join.To[i+1:]
		if !earlier[t.Join.table] {
			return fmt.Errorf("join to unknown table %q (a table joins only to one listed before it)", t.Join.table)
		}
	}
	if !direct && t.Join == nil {
		return errors.New("no subject columns and no join: the table cannot be matched to a subject")
	}
	if t.Tenant == "" {
		// Every table must say whose tenant a row is, joined ones too, or an
		// erasure for one tenant would reach another's rows with the same key.
		return errors.New("names no tenant column (every table needs one, joined tables too)")
	}
	cols := make(map[string]bool, len(t.Columns))
	for c, s := range t.Columns {
		if !columnRE.MatchString(c) {
			return fmt.Errorf("column %q is not a column name", c)
		}
		switch s {
		case SetNull, Hash:
		case Delete, Retain:
			return fmt.Errorf("column %q: %q is a table strategy (columns take set_null or hash)", c, s)
		default:
			return fmt.Errorf("column %q: unknown strategy %q (want set_null or hash)", c, s)
		}
		if c == t.Tenant {
			return fmt.Errorf("column %q: the tenant column cannot be erased", c)
		}
		cols[c] = true
	}
	if t.Strategy == "" && t.Retain != nil {
		t.Strategy = Retain
	}
	switch t.Strategy {
	case Delete:
		if len(t.Columns) > 0 {
			return errors.New("strategy delete deletes the rows: columns to erase make no sense")
		}
	case Retain:
		if t.Retain == nil {
			return errors.New("strategy retain needs a retain rule (legal_basis, period, from)")
		}
		r := t.Retain
		if strings.TrimSpace(r.LegalBasis) == "" {
			return errors.New("retain: no legal_basis")
		}
		p, err := period.Parse(r.Period)
		if err != nil {
			return fmt.Errorf("retain: %w", err)
		}
		r.period = p
		if !columnRE.MatchString(r.From) {
			return fmt.Errorf("retain: from %q is not a column name", r.From)
		}
		if cols[r.From] {
			return fmt.Errorf("retain: from column %q is erased", r.From)
		}
		// The deferred erasure, once the period is over, finds the rows by
		// the identifiers they still hold.
		if (t.Subject.Email == "" || cols[t.Subject.Email]) && (t.Subject.UserID == "" || cols[t.Subject.UserID]) {
			return errors.New("retained rows must keep a subject column (email or user_id) so that the erasure due after the period finds them")
		}
	case "":
		if len(t.Columns) == 0 {
			return errors.New("no strategy and no columns to erase")
		}
		// The rows stay: every column that identifies the subject must go,
		// or the rows would still be the subject's after erasure.
		for _, c := range []string{t.Subject.Email, t.Subject.UserID, t.joinColumn()} {
			if c != "" && !cols[c] {
				return fmt.Errorf("rows are kept, so the subject column %q must be set_null or hash", c)
			}
		}
	default:
		return fmt.Errorf("unknown strategy %q (want delete, retain, or none with columns)", t.Strategy)
	}
	if t.Retain != nil && t.Strategy != Retain {
		return fmt.Errorf("a retain rule with strategy %q", t.Strategy)
	}
	return t.validateClocks(cols)
}

// validateClocks checks the table's clocks; erased are the columns its
// erasure nulls or hashes.
func (t *Table) validateClocks(erased map[string]bool) error {
	names := make([]string, 0, len(t.Clocks))
	for name := range t.Clocks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !slices.Contains(connector.Clocks(), name) {
			return fmt.Errorf("clocks: unknown clock %q (want %s)", name, strings.Join(connector.Clocks(), ", "))
		}
		if t.Strategy == Retain {
			return fmt.Errorf("clocks: %s: the table is retained by law (its retain rule says until when): no retention policy sweeps it", name)
		}
		table, column := t.clockRef(name)
		if !columnRE.MatchString(column) || (strings.Contains(t.Clocks[name], ".") && !identRE.MatchString(table)) {
			return fmt.Errorf("clocks: %s: %q is not a column name, nor table.column", name, t.Clocks[name])
		}
		if table == "" {
			if erased[column] {
				return fmt.Errorf("clocks: %s: column %q is erased", name, column)
			}
			if t.Strategy == "" && len(sortedColumns(t.Columns, Hash)) > 0 {
				// Kept rows are found again by their own time after a sweep
				// anonymised them: only columns nulled tell them apart.
				return fmt.Errorf("clocks: %s: the rows are kept and columns hashed, so a sweep by the table's own column %q could not tell the rows it already anonymised (a hash is still a value): erase with set_null, or run the clock through the join", name, column)
			}
			continue
		}
		if t.Join == nil {
			return fmt.Errorf("clocks: %s: %q is a column of table %q, which the table has no join to", name, t.Clocks[name], table)
		}
		if table != t.Join.table {
			return fmt.Errorf("clocks: %s: %q: a clock in another table goes through the table's join, which is to %q", name, t.Clocks[name], t.Join.table)
		}
	}
	return nil
}

// clockRef says where the table's clock name is read: its own column
// (table ""), or a column of the table its join goes to. Both are empty
// for a clock the table does not have.
func (t *Table) clockRef(name string) (table, column string) {
	ref := t.Clocks[name]
	if i := strings.LastIndexByte(ref, '.'); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	return "", ref
}

func (t *Table) joinColumn() string {
	if t.Join == nil {
		return ""
	}
	return t.Join.Column
}

// Indexes are the statements that create the indexes the engine's lookups
// use: each table's subject columns (the email as the engine matches it,
// lowered and trimmed) and the column it joins by, each with the tenant.
// Without them every lookup reads the whole table, and an erasure costs
// what the table holds. The demo systems create them (OpenSQLite); a
// system of one's own should have them, or their equivalent.
func (m *Map) Indexes() []string {
	var out []string
	add := func(t *Table, name, expr string) {
		out = append(out, "CREATE INDEX IF NOT EXISTS "+quote("lethe_"+t.Name+"_"+name)+" ON "+quote(t.Name)+
			" ("+expr+", "+quote(t.Tenant)+")")
	}
	for i := range m.Tables {
		t := &m.Tables[i]
		if t.Subject.Email != "" {
			add(t, "email", "(LOWER(TRIM("+quote(t.Subject.Email)+")))")
		}
		if t.Subject.UserID != "" {
			add(t, "user_id", quote(t.Subject.UserID))
		}
		if t.Join != nil && t.Join.Column != t.Subject.UserID {
			add(t, "join", quote(t.Join.Column))
		}
	}
	return out
}

package exportbundle

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// MaxRecordsSize is the largest records document Write takes, in bytes. Write
// holds every records document of a bundle while it writes it.
const MaxRecordsSize = 64 << 20

// Records is a parsed records document: rows by data category, then by
// table. A row's values are kept as their JSON text.
type Records map[string]map[string][]Row

// Row is one row of a table: its values by column, as JSON text.
type Row map[string]json.RawMessage

// ParseRecords parses a records document: a JSON object whose values (one
// per data category) are objects whose values (one per table) are arrays of
// objects (one per row). A row's values are usually scalars; an object or
// array is kept as it is. It takes what the connector SDK takes: null for
// the document, a category, a table or a row is empty.
func ParseRecords(doc []byte) (Records, error) {
	var r Records
	if err := json.Unmarshal(doc, &r); err != nil {
		return nil, fmt.Errorf("exportbundle: records document, not grouped by data category, then table: %w", err)
	}
	if r == nil {
		r = Records{}
	}
	for _, tables := range r {
		for _, rows := range tables {
			for i := range rows {
				if rows[i] == nil {
					rows[i] = Row{}
				}
			}
		}
	}
	return r, nil
}

// Categories returns the document's data categories that hold at least one
// row, sorted.
func (r Records) Categories() []string {
	var cs []string
	for c, tables := range r {
		for _, rows := range tables {
			if len(rows) > 0 {
				cs = append(cs, c)
				break
			}
		}
	}
	slices.Sort(cs)
	return cs
}

// Counts returns the number of rows in each data category that holds any.
func (r Records) Counts() map[string]int64 {
	n := map[string]int64{}
	for c, tables := range r {
		for _, rows := range tables {
			if len(rows) > 0 {
				n[c] += int64(len(rows))
			}
		}
	}
	return n
}

// table is one table of a records document, ready to show.
type table struct {
	Category, Name string
	CSVPath        string
	Columns        []string
	Rows           []Row
}

// tables lists a system's tables in the order of the categories (see
// categoryOrder), then by name, with the path of each one's CSV file:
// csv/<system>/<table>.csv, or csv/<system>/<category>.<table>.csv for a
// table name that more than one category uses, each a safe name.
func (r Records) tables(system string) []table {
	var ts []table
	seen := map[string]int{}
	for _, c := range sortCategories(slices.Collect(maps.Keys(r))) {
		for _, name := range slices.Sorted(maps.Keys(r[c])) {
			ts = append(ts, table{Category: c, Name: name, Rows: r[c][name]})
			seen[name]++
		}
	}
	used := map[string]bool{}
	for i := range ts {
		t := &ts[i]
		base := SafeName(t.Name)
		if seen[t.Name] > 1 {
			base = SafeName(t.Category + "." + t.Name)
		}
		name := base
		for n := 2; used[strings.ToLower(name)]; n++ {
			name = base + "-" + strconv.Itoa(n)
		}
		used[strings.ToLower(name)] = true
		t.CSVPath = "csv/" + system + "/" + name + ".csv"
		cols := map[string]bool{}
		for _, row := range t.Rows {
			for k := range row {
				cols[k] = true
			}
		}
		t.Columns = slices.Sorted(maps.Keys(cols))
	}
	return ts
}

// cell is how a value shows as text: a string as it is, null as nothing, a
// number or a boolean as its JSON text, an object or an array as compact
// JSON. kind is "null", "string", "json" (object or array) or "scalar".
func cell(v json.RawMessage) (text, kind string) {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "", "null" // a column that the row does not have
	}
	switch v[0] {
	case 'n':
		return "", "null"
	case '"':
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s, "string"
		}
	case '{', '[':
		var b bytes.Buffer
		if json.Compact(&b, v) == nil {
			return b.String(), "json"
		}
	}
	return string(v), "scalar"
}

// bom is the UTF-8 byte order mark, so that a spreadsheet reads the CSV file
// as UTF-8.
const bom = "\uFEFF"

// writeCSV writes t as CSV (RFC 4180): a header with the columns, then the
// rows.
func writeCSV(w io.Writer, t table) error {
	if _, err := io.WriteString(w, bom); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	if err := cw.Write(t.Columns); err != nil {
		return err
	}
	rec := make([]string, len(t.Columns))
	for _, row := range t.Rows {
		for i, c := range t.Columns {
			text, kind := cell(row[c])
			if kind == "string" && text != "" && strings.ContainsRune("=+-@\t\r", rune(text[0])) {
				text = "'" + text // not a formula
			}
			rec[i] = text
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

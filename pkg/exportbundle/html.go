package exportbundle

import (
	_ "embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"net/url"
	"path"
	"slices"
	"strings"
)

//go:embed index.html.tmpl
var indexHTML string

// indexTemplate renders index.html. html/template escapes every value: the
// data is untrusted. The page loads nothing: no script, no font, no image,
// no style sheet but its own.
var indexTemplate = template.Must(template.New("index.html").Parse(indexHTML))

type page struct {
	Tenant, RequestID string
	Generated         string // in words
	GeneratedISO      string
	Digest            string // of manifest.json, hex
	Systems           []systemView
	Categories        []categoryView
}

type systemView struct {
	Name, Status, StatusClass, Note string
	Records                         string // path of the records document, if any
	Rows                            int64
	Files                           int
	Categories                      []string // titles
	Empty                           string   // the empty state, for a system that shows nothing
}

type categoryView struct {
	ID, Title, About string
	Systems          []categorySystem
}

type categorySystem struct {
	Name   string
	Tables []tableView
	Files  []fileView
}

type tableView struct {
	Title, CSV string
	Columns    []string
	Rows       [][]cellView
}

type cellView struct{ Text, Kind string }

type fileView struct {
	Name, Href, Size, Type string
	Video, Audio           bool
}

// filesCategory is where the page shows files that have no category.
const filesCategory = "\x00files"

// writeIndex writes index.html for c, whose records documents are docs (nil
// for a system without one).
func writeIndex(w io.Writer, c *Manifest, docs []Records, digest [32]byte) error {
	p := page{
		Tenant:       c.Tenant,
		RequestID:    c.RequestID,
		Generated:    c.GeneratedAt.Format("2 January 2006 at 15:04 UTC"),
		GeneratedISO: c.GeneratedAt.Format("2006-01-02T15:04:05Z"),
		Digest:       hex.EncodeToString(digest[:]),
	}
	byCategory := map[string]map[string]*categorySystem{} // category -> system -> what it shows there
	at := func(cat, system string) *categorySystem {
		if byCategory[cat] == nil {
			byCategory[cat] = map[string]*categorySystem{}
		}
		if byCategory[cat][system] == nil {
			byCategory[cat][system] = &categorySystem{Name: system}
		}
		return byCategory[cat][system]
	}
	for i, s := range c.Systems {
		v := systemView{Name: s.Name, Status: outcomeText(s.Outcome), Note: s.Note, Files: len(s.Files)}
		switch s.Outcome {
		case "exported":
			v.StatusClass = "ok"
		case "not_found":
			v.StatusClass = "none"
		case "failed", "dead_letter":
			v.StatusClass = "bad"
		}
		cats := slices.Clone(s.Categories)
		if s.Records != nil {
			v.Records = s.Records.Path
		}
		if docs[i] != nil {
			for _, t := range docs[i].tables(s.Name) {
				v.Rows += int64(len(t.Rows))
				cats = append(cats, t.Category)
				cs := at(t.Category, s.Name)
				cs.Tables = append(cs.Tables, tableOf(t))
			}
		}
		for _, f := range s.Files {
			cat := f.Category
			if cat == "" {
				cat = filesCategory
			} else {
				cats = append(cats, cat)
			}
			cs := at(cat, s.Name)
			cs.Files = append(cs.Files, fileOf(f))
		}
		for _, cat := range slices.Compact(sortCategories(cats)) {
			v.Categories = append(v.Categories, categoryOf(cat).Title)
		}
		if v.Rows == 0 && v.Files == 0 {
			if s.Outcome == "exported" || s.Outcome == "not_found" {
				v.Empty = "This service holds no data about you."
			} else {
				v.Empty = "Nothing from this service is in this download."
			}
			if strings.TrimSpace(v.Note) == v.Empty {
				v.Note = "" // said once
			}
		}
		p.Systems = append(p.Systems, v)
	}
	var names []string
	for cat := range byCategory {
		if cat != filesCategory {
			names = append(names, cat)
		}
	}
	names = sortCategories(names)
	if byCategory[filesCategory] != nil {
		names = append(names, filesCategory)
	}
	for i, cat := range names {
		cv := categoryView{ID: fmt.Sprintf("category-%d", i+1)}
		if cat == filesCategory {
			cv.Title, cv.About = "Other files", "Files about you that are not in one of the kinds of data above."
		} else {
			k := categoryOf(cat)
			cv.Title, cv.About = k.Title, k.About
		}
		for _, s := range c.Systems { // in the order of the systems
			if cs := byCategory[cat][s.Name]; cs != nil {
				cv.Systems = append(cv.Systems, *cs)
			}
		}
		p.Categories = append(p.Categories, cv)
	}
	return indexTemplate.Execute(w, p)
}

func tableOf(t table) tableView {
	v := tableView{Title: humanize(t.Name), CSV: href(t.CSVPath)}
	for _, c := range t.Columns {
		v.Columns = append(v.Columns, humanize(c))
	}
	for _, row := range t.Rows {
		cells := make([]cellView, len(t.Columns))
		for i, c := range t.Columns {
			text, kind := cell(row[c])
			cells[i] = cellView{text, kind}
		}
		v.Rows = append(v.Rows, cells)
	}
	return v
}

func fileOf(f File) fileView {
	return fileView{
		Name:  path.Base(f.Path),
		Href:  href(f.Path),
		Size:  humanSize(f.Size),
		Type:  f.ContentType,
		Video: strings.HasPrefix(f.ContentType, "video/"),
		Audio: strings.HasPrefix(f.ContentType, "audio/"),
	}
}

// href is a relative link to a path in the bundle, each segment escaped.
func href(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// humanSize says a size in bytes the way a file manager does.
func humanSize(n int64) string {
	if n < 1000 {
		if n == 1 {
			return "1 byte"
		}
		return fmt.Sprintf("%d bytes", n)
	}
	f := float64(n)
	for _, unit := range []string{"kB", "MB", "GB", "TB"} {
		f /= 1000
		if f < 999.95 || unit == "TB" {
			return fmt.Sprintf("%.1f %s", f, unit)
		}
	}
	panic("unreachable")
}

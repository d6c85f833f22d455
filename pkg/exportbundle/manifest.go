package exportbundle

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Format is the value of Manifest.Format for the bundles this package writes.
const Format = "lethe-export/1"

// Paths of the bundle's own entries.
const (
	ManifestPath = "manifest.json"
	IndexPath    = "index.html"
)

// Manifest describes one bundle.
//
// Its one encoding is [Manifest.Encode], which is deterministic: the
// orchestrator puts its SHA-256 in the transparency log and the certificate,
// and rebuilds the same manifest when the person downloads the bundle. Encode
// puts the manifest in canonical form first (see [Manifest.Encode]), so two
// manifests that differ only in the order of their systems, categories or
// files, in GeneratedAt's time zone or below the second, encode the same.
type Manifest struct {
	Format      string    `json:"format"`
	RequestID   string    `json:"request_id"`
	Tenant      string    `json:"tenant"`
	GeneratedAt time.Time `json:"generated_at"` // UTC, whole seconds
	Systems     []System  `json:"systems"`      // sorted by Name
}

// System is what one system exported.
type System struct {
	Name       string           `json:"system"`
	Outcome    string           `json:"outcome"`              // exported, not_found, failed, ...
	Categories []string         `json:"categories,omitempty"` // data categories present, sorted
	Counts     map[string]int64 `json:"record_counts,omitempty"`
	Records    *File            `json:"records,omitempty"` // the records document, at RecordsPath(Name)
	Files      []File           `json:"files,omitempty"`   // at FilePath(Name, ...), sorted by Path
	Note       string           `json:"note,omitempty"`    // plain words, e.g. why nothing is there
}

// File is one blob in the bundle: a records document or a file.
type File struct {
	Path        string `json:"path"` // inside the ZIP
	Category    string `json:"category,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"` // lower-case hex
	Ref         string `json:"-"`      // the blob's key in the blob store; not in the manifest
}

// RecordsPath is the path of a system's records document in the bundle.
func RecordsPath(system string) string { return "systems/" + system + ".json" }

// FilePath is the path of a system's file in the bundle: name is made a safe
// single path segment with [SafeName].
func FilePath(system, name string) string { return "files/" + system + "/" + SafeName(name) }

// FilePaths returns the paths of a system's files named names, in order:
// FilePath of each, made unique (ignoring case, as Windows and macOS do) with
// " (2)", " (3)", ... before the extension of a name that an earlier one
// already has. The same names in the same order give the same paths.
func FilePaths(system string, names []string) []string {
	used := map[string]bool{}
	paths := make([]string, len(names))
	for i, n := range names {
		name := SafeName(n)
		stem, ext := name, ""
		if j := strings.LastIndexByte(name, '.'); j > 0 && len(name)-j <= 16 {
			stem, ext = name[:j], name[j:]
		}
		for k := 2; used[strings.ToLower(name)]; k++ {
			suffix := " (" + strconv.Itoa(k) + ")"
			name = SafeName(cutUTF8(stem, maxSegment-len(suffix)-len(ext)) + suffix + ext)
		}
		used[strings.ToLower(name)] = true
		paths[i] = "files/" + system + "/" + name
	}
	return paths
}

// maxSegment is the longest path segment SafeName returns, in bytes: well
// under the 255 bytes that file systems allow, with room for the folders.
const maxSegment = 100

// SafeName turns name into a safe single path segment, for a file's name in
// the bundle: one that unzips to the same name on Windows, macOS and Linux.
// Letters (of any script), digits, spaces and ._-+(),'& are kept; anything
// else (a slash, a control character, a byte that is not UTF-8, ...) becomes
// "_". A leading or trailing dot or space is dropped, a name Windows
// reserves (CON, NUL, COM1, ...) gets a leading "_", a long name is cut to
// 100 bytes keeping its extension, and an empty name becomes "file".
// SafeName(SafeName(s)) == SafeName(s).
func SafeName(name string) string {
	var b strings.Builder
	for _, r := range name { // a byte that is not UTF-8 comes as utf8.RuneError, which is not kept
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) || strings.ContainsRune(" ._-+(),'&", r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := trimName(b.String())
	if s == "" {
		return "file"
	}
	base, _, _ := strings.Cut(s, ".")
	switch strings.ToUpper(strings.TrimRight(base, " ")) {
	case "CON", "PRN", "AUX", "NUL",
		"COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
		"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9":
		s = "_" + s
	}
	if len(s) > maxSegment { // cut after the reserved-name check: the cut keeps the name's first 84 bytes
		ext := ""
		if i := strings.LastIndexByte(s, '.'); i > 0 && len(s)-i <= 16 {
			ext = s[i:]
		}
		s = trimName(cutUTF8(s[:len(s)-len(ext)], maxSegment-len(ext)) + ext)
	}
	return s
}

func trimName(s string) string { return strings.Trim(s, ". ") }

// cutUTF8 cuts s to at most n bytes, on a rune boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Encode returns the manifest's one encoding: indented JSON with a trailing
// newline. It encodes the manifest's canonical form, without changing m:
// systems sorted by name, each system's categories sorted without
// duplicates, its files sorted by path, GeneratedAt in UTC cut to the second.
// It fails if the manifest is not valid (see [Manifest.Validate]).
func (m *Manifest) Encode() ([]byte, error) {
	c := m.canonical()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c.encode()
}

func (c *Manifest) encode() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("exportbundle: encode the manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// Digest is the SHA-256 of Encode's bytes.
func (m *Manifest) Digest() ([32]byte, error) {
	b, err := m.Encode()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// Validate reports whether the manifest's canonical form can be written: the
// format is Format; request id, tenant and generation time are set; system
// names are safe path segments ([SafeName]), each once, each with an
// outcome; a records document is at RecordsPath; a file is at
// "files/<system>/<name>" with a safe name; paths are unique even ignoring
// case; sizes are not negative and digests are 64 lower-case hex digits.
func (m *Manifest) Validate() error { return m.canonical().validate() }

// canonical returns a copy of m in canonical form (see Encode). Refs are
// kept.
func (m *Manifest) canonical() *Manifest {
	c := *m
	c.GeneratedAt = m.GeneratedAt.UTC().Truncate(time.Second)
	c.Systems = slices.Clone(m.Systems)
	for i := range c.Systems {
		s := &c.Systems[i]
		s.Categories = slices.Compact(slices.Sorted(slices.Values(s.Categories)))
		if len(s.Categories) == 0 {
			s.Categories = nil
		}
		if s.Records != nil {
			r := *s.Records
			s.Records = &r
		}
		s.Files = slices.Clone(s.Files)
		slices.SortStableFunc(s.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	}
	slices.SortStableFunc(c.Systems, func(a, b System) int { return strings.Compare(a.Name, b.Name) })
	return &c
}

func (c *Manifest) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("exportbundle: invalid manifest: "+format, args...))
	}
	if c.Format != Format {
		bad("format is %q, not %q", c.Format, Format)
	}
	if c.RequestID == "" {
		bad("no request id")
	}
	if c.Tenant == "" {
		bad("no tenant")
	}
	if c.GeneratedAt.IsZero() {
		bad("no generation time")
	}
	paths := map[string]string{} // lower-case path -> path
	path := func(p string) {
		if q, ok := paths[strings.ToLower(p)]; ok {
			bad("path %s is listed twice (as %s)", p, q)
		}
		paths[strings.ToLower(p)] = p
	}
	for i, s := range c.Systems {
		if s.Name == "" || SafeName(s.Name) != s.Name {
			bad("system name %q is not a safe path segment", s.Name)
			continue
		}
		if i > 0 && c.Systems[i-1].Name == s.Name {
			bad("system %s is listed twice", s.Name)
		}
		if s.Outcome == "" {
			bad("system %s has no outcome", s.Name)
		}
		for k, n := range s.Counts {
			if k == "" || n < 0 {
				bad("system %s: record count %q is %d", s.Name, k, n)
			}
		}
		if s.Records != nil {
			if s.Records.Path != RecordsPath(s.Name) {
				bad("system %s: records document at %s, not %s", s.Name, s.Records.Path, RecordsPath(s.Name))
			}
			if err := s.Records.validate(); err != nil {
				bad("%s: %v", s.Records.Path, err)
			}
			path(s.Records.Path)
		}
		dir := "files/" + s.Name + "/"
		for _, f := range s.Files {
			name, ok := strings.CutPrefix(f.Path, dir)
			if !ok || name == "" || SafeName(name) != name {
				bad("system %s: file path %q is not %s<safe name>", s.Name, f.Path, dir)
				continue
			}
			if err := f.validate(); err != nil {
				bad("%s: %v", f.Path, err)
			}
			path(f.Path)
		}
	}
	return errors.Join(errs...)
}

func (f *File) validate() error {
	if f.Size < 0 {
		return fmt.Errorf("size %d", f.Size)
	}
	if !isHexSHA256(f.SHA256) {
		return fmt.Errorf("sha256 %q is not 64 lower-case hex digits", f.SHA256)
	}
	return nil
}

func isHexSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

package exportbundle

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// category is how the page names a data category of the privacy policy and
// says what it is.
type category struct {
	Name, Title, About string
}

// categories are the privacy policy's data categories, in the order the page
// shows them. Others come after them, by name.
var categories = []category{
	{"account", "Your account", "The details of your account: your name, email address and settings."},
	{"identification", "Identification", "Information that identifies you, such as identifiers and the details used to check who you are."},
	{"connection", "Sign-ins", "When and from where you signed in."},
	{"professional", "Professional details", "Your job, your company and other details about your work."},
	{"billing", "Billing", "Your invoices, payments and billing details."},
	{"engagement", "Emails and engagement", "The emails we sent you and how you interacted with them, such as opens and clicks."},
	{"recordings", "Recordings", "Recordings of the webinars and meetings you took part in."},
	{"contributions", "Your contributions", "What you wrote or posted, such as comments, questions and answers."},
}

func categoryOf(name string) category {
	for _, c := range categories {
		if c.Name == name {
			return c
		}
	}
	t := humanize(name)
	if t == "" {
		return category{name, "Other data", "Other data about you."}
	}
	return category{name, t, "Other data about you, filed under “" + strings.ToLower(t) + "”."}
}

// categoryRank orders categories: those of the privacy policy first, in its
// order, then the others.
func categoryRank(name string) int {
	for i, c := range categories {
		if c.Name == name {
			return i
		}
	}
	return len(categories)
}

// sortCategories sorts names in categoryRank order, then by name.
func sortCategories(names []string) []string {
	slices.SortFunc(names, func(a, b string) int {
		if d := categoryRank(a) - categoryRank(b); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return names
}

// humanize turns an identifier into words: "login_history" is "Login
// history".
func humanize(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '_' || r == '-' || unicode.IsSpace(r) }), " ")
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// outcomeText says a system's outcome in plain words.
func outcomeText(outcome string) string {
	switch outcome {
	case "exported":
		return "Data exported"
	case "not_found":
		return "Holds no data about you"
	case "failed", "dead_letter":
		return "Could not export"
	case "retained":
		return "Kept by law"
	case "resolved":
		return "Handled by our staff"
	}
	return humanize(outcome)
}

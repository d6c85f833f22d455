package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenBadURLs(t *testing.T) {
	tests := []struct{ url, want string }{
		{"", "empty URL"},
		{"sqlite:", "names no file"},
		{"mysql://root:hunter2@db/lethe", "unknown kind of store"},
		{"./data/lethe.db", "unknown kind of store"},
		{"postgres:///lethe", "names no host"},
		{"postgres://user:hunter2@%zz/db", "not a PostgreSQL URL"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			s, err := Open(context.Background(), tt.url)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q repeats the password", err)
			}
		})
	}
}

func TestOpenSQLiteURL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lethe.db")
	s, err := Open(context.Background(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

package blob_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/blob/blobtest"
)

func TestOpenURLFilesystem(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for _, tc := range []struct{ name, url, dir string }{
		{"plain path", filepath.Join(root, "a"), filepath.Join(root, "a")},
		{"file URL", "file://" + filepath.Join(root, "b"), filepath.Join(root, "b")},
		{"file URL with localhost", "file://localhost" + filepath.Join(root, "c"), filepath.Join(root, "c")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := blob.OpenURL(ctx, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := s.(*blob.FS); !ok {
				t.Fatalf("OpenURL gave a %T", s)
			}
			fi, err := os.Stat(tc.dir)
			if err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("root: %v, %v; want a 0700 folder", fi, err)
			}
			blobtest.Put(t, s, "req-1/x", []byte("x"))
			if _, err := os.Stat(filepath.Join(tc.dir, "req-1", "x")); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("relative plain path", func(t *testing.T) {
		t.Chdir(root)
		s, err := blob.OpenURL(ctx, "rel/blobs")
		if err != nil {
			t.Fatal(err)
		}
		if got := s.(*blob.FS).Dir(); got != filepath.Join(root, "rel", "blobs") {
			t.Errorf("rooted at %s", got)
		}
	})
}

func TestOpenURLS3(t *testing.T) {
	f := newFakeS3(t)
	bucket := f.bucket(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testtesttest")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "")
	ctx := context.Background()
	u := "s3://" + bucket + "/lethe/blobs?endpoint=" + url.QueryEscape(f.srv.URL) + "&region=us-east-1&path_style=true"
	s, err := blob.OpenURL(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	s3, ok := s.(*blob.S3)
	if !ok {
		t.Fatalf("OpenURL gave a %T", s)
	}
	blobtest.Put(t, s, "req-1/records.json", []byte("{}"))
	if names := objects(t, s3, bucket); len(names) != 1 || names[0] != "lethe/blobs/req-1/records.json" {
		t.Errorf("objects %v, want the prefix prepended", names)
	}
	// The endpoint given as host:port alone would be https; with http://
	// it is plain http, as the server here speaks.
	if _, err := blob.OpenURL(ctx, "s3://"+bucket+"?endpoint="+url.QueryEscape(f.srv.URL)+"&path_style=true&region=us-east-1"); err != nil {
		t.Errorf("no prefix: %v", err)
	}

	const secret = "SeCrEtVaLuE"
	for _, tc := range []struct{ name, url string }{
		{"missing bucket", "s3://no-such-bucket?endpoint=" + url.QueryEscape(f.srv.URL) + "&path_style=true&region=us-east-1"},
		{"credentials in the URL", "s3://user:" + secret + "@" + bucket + "?endpoint=" + url.QueryEscape(f.srv.URL)},
		{"unknown parameter", "s3://" + bucket + "?endpoint=" + url.QueryEscape(f.srv.URL) + "&secret_key=" + secret},
		{"bad path_style", "s3://" + bucket + "?path_style=" + secret},
		{"parameter twice", "s3://" + bucket + "?region=a&region=" + secret},
		{"no bucket", "s3:///prefix"},
		{"bad prefix", "s3://" + bucket + "/a//" + secret},
		{"bad endpoint scheme", "s3://" + bucket + "?endpoint=ftp://" + secret},
		{"endpoint with a path", "s3://" + bucket + "?endpoint=http://host/" + secret},
		{"unknown scheme", "gs://" + bucket + "/" + secret},
		{"relative file URL", "file://" + secret + "/x"},
		{"file URL with a query", "file:///tmp/x?" + secret},
		{"empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := blob.OpenURL(ctx, tc.url)
			if err == nil {
				t.Fatal("OpenURL succeeded")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error quotes the URL: %v", err)
			}
			t.Log(err)
		})
	}

	t.Run("no credentials", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		if _, err := blob.OpenURL(ctx, u); err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
			t.Errorf("OpenURL without credentials = %v", err)
		}
	})
}

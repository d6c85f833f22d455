package blob

import (
	"errors"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/minio/minio-go/v7"
)

// The transport's and the os package's errors name the URL or the path,
// which name the key; the store's errors must not.
func TestErrorsDropKeyAndPath(t *testing.T) {
	const secret = "SECRETxNAME"
	for _, tc := range []struct {
		name string
		err  error
		is   error
	}{
		{"url", &url.Error{Op: "Get", URL: "http://127.0.0.1:1/bucket/" + secret, Err: syscall.ECONNREFUSED}, syscall.ECONNREFUSED},
		{"no such key", minio.ErrorResponse{Code: minio.NoSuchKey, Key: secret, StatusCode: 404, Message: "The specified key does not exist."}, ErrNotFound},
		{"denied", minio.ErrorResponse{Code: "AccessDenied", Key: secret, StatusCode: 403, Message: "Access Denied"}, nil},
	} {
		err := s3Err("open", tc.err)
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v", tc.name, err)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v is not %v", tc.name, err, tc.is)
		}
	}
	for _, e := range []error{
		&os.PathError{Op: "open", Path: "/data/" + secret, Err: syscall.EACCES},
		&os.LinkError{Op: "rename", Old: "/data/.put~1", New: "/data/" + secret, Err: syscall.ENOTDIR},
	} {
		err := fsErr("put", e)
		if strings.Contains(err.Error(), secret) || !errors.Is(err, e.(interface{ Unwrap() error }).Unwrap()) {
			t.Errorf("%v", err)
		}
	}
}

package blob

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// OpenURL opens a store from a URL:
//
//   - a plain path, or file:///abs/path: the filesystem store ([NewFS])
//     rooted there, created 0700 if missing;
//   - s3://bucket/optional/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true:
//     the S3 store ([NewS3]); every query parameter is optional. The
//     endpoint defaults to s3.amazonaws.com over https; the region to
//     AWS_REGION, else what the server says. The credentials come from the
//     environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional
//     AWS_SESSION_TOKEN), never from the URL. OpenURL checks that the
//     bucket exists.
//
// Its errors do not quote the URL, which a mistaken configuration may
// have put a secret in.
func OpenURL(ctx context.Context, rawURL string) (Store, error) {
	if rawURL == "" {
		return nil, errors.New("blob: empty store URL")
	}
	if !strings.Contains(rawURL, "://") {
		return NewFS(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("blob: store URL does not parse")
	}
	switch u.Scheme {
	case "file":
		if u.User != nil || (u.Host != "" && u.Host != "localhost") || u.RawQuery != "" || u.Fragment != "" {
			return nil, errors.New("blob: a file URL is file:///absolute/path, with no host or query")
		}
		if u.Path == "" || !filepath.IsAbs(u.Path) {
			return nil, errors.New("blob: a file URL needs an absolute path")
		}
		return NewFS(u.Path)
	case "s3":
		return openS3URL(ctx, u)
	default:
		return nil, fmt.Errorf("blob: store URL scheme %q is not file or s3", u.Scheme)
	}
}

func openS3URL(ctx context.Context, u *url.URL) (Store, error) {
	if u.User != nil {
		return nil, errors.New("blob: s3 URL has credentials; they belong in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	if u.Host == "" {
		return nil, errors.New("blob: s3 URL has no bucket (s3://bucket/prefix)")
	}
	if u.Fragment != "" {
		return nil, errors.New("blob: s3 URL has a fragment")
	}
	cfg := S3Config{
		Endpoint:     "https://s3.amazonaws.com",
		Bucket:       u.Host,
		Prefix:       strings.Trim(u.Path, "/"),
		Region:       os.Getenv("AWS_REGION"),
		AccessKey:    os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey:    os.Getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken: os.Getenv("AWS_SESSION_TOKEN"),
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, errors.New("blob: s3 URL query does not parse")
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return nil, errors.New("blob: s3 URL: a parameter is given more than once")
		}
		v := vs[0]
		switch k {
		case "endpoint":
			if !strings.Contains(v, "://") {
				v = "https://" + v
			}
			cfg.Endpoint = v
		case "region":
			cfg.Region = v
		case "path_style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, errors.New("blob: s3 URL: path_style is true or false")
			}
			cfg.PathStyle = b
		default:
			// Not quoted: a misplaced secret may be the parameter's name.
			return nil, errors.New("blob: s3 URL: unknown parameter (it takes endpoint, region, path_style)")
		}
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, errors.New("blob: s3 store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	s, err := NewS3(cfg)
	if err != nil {
		return nil, err
	}
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return nil, s3Err("check bucket", err)
	}
	if !ok {
		return nil, errors.New("blob: s3: bucket does not exist")
	}
	return s, nil
}

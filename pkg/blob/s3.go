package blob

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says where an [S3] store is and how to sign in to it.
type S3Config struct {
	// Endpoint is the server's host[:port], or a URL "http://host:port"
	// or "https://host:port" whose scheme then decides Secure. Empty means
	// AWS S3 (s3.amazonaws.com, always over https).
	Endpoint string
	// Secure selects https for an Endpoint given without a scheme.
	Secure bool
	// Region is the bucket's region; empty asks the server.
	Region string
	// Bucket holds the blobs; it must exist.
	Bucket string
	// Prefix, if not empty, is prepended (with a "/") to every key, so
	// that several stores can share a bucket. It follows the key rules.
	Prefix string
	// AccessKey, SecretKey and SessionToken sign the requests; with no
	// AccessKey the requests are anonymous.
	AccessKey, SecretKey, SessionToken string
	// PathStyle addresses the bucket as host/bucket rather than
	// bucket.host (MinIO and most self-hosted servers want it).
	PathStyle bool
}

// S3 is a [Store] in a bucket of an S3-compatible server: the blob under
// key is the object Prefix/key.
//
// A Put of less than 16 MiB is one PUT; a larger one is a multipart
// upload of 16 MiB parts (so at most 16 MiB is held in memory per Put,
// and a blob is at most 10,000 parts: 160 GiB). A multipart upload that
// fails or is cancelled is aborted, so nothing of it stays on the server
// and the object under the key is as it was. Every request carries the
// MD5 and SHA-256 of its body, so a server stores what was sent or
// refuses it.
//
// On a bucket with versioning on, DeletePrefix leaves the objects'
// earlier versions (S3 adds delete markers): give the store a bucket
// without versioning, or blobs that [Encrypted] makes unreadable once
// their key is destroyed.
type S3 struct {
	client *minio.Client
	core   minio.Core
	bucket string
	prefix string // "" or ending in "/"
}

// partSize is the size of a multipart upload's parts, and the largest
// blob that is uploaded with a single PUT.
const partSize = 16 << 20

// maxParts is S3's limit on a multipart upload's parts.
const maxParts = 10000

// abortTimeout bounds the abort of a failed multipart upload, which runs
// even when the Put's context is cancelled.
const abortTimeout = time.Minute

var partBufs = sync.Pool{New: func() any {
	b := make([]byte, partSize)
	return &b
}}

// NewS3 opens the S3 store cfg describes. It does not contact the server.
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("blob: s3: no bucket")
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := CheckKey(prefix); err != nil {
			return nil, fmt.Errorf("blob: s3: prefix: %w", err)
		}
		prefix += "/"
	}
	endpoint, secure := cfg.Endpoint, cfg.Secure
	switch {
	case endpoint == "":
		endpoint, secure = "s3.amazonaws.com", true
	case strings.Contains(endpoint, "://"):
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
			return nil, errors.New("blob: s3: endpoint must be host[:port] or http(s)://host[:port]")
		}
		switch u.Scheme {
		case "http":
			secure = false
		case "https":
			secure = true
		default:
			return nil, errors.New("blob: s3: endpoint scheme must be http or https")
		}
		endpoint = u.Host
	}
	var creds *credentials.Credentials
	if cfg.AccessKey != "" {
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	} else {
		creds = credentials.New(&credentials.Static{Value: credentials.Value{SignerType: credentials.SignatureAnonymous}})
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, s3Err("open", err)
	}
	return &S3{client: client, core: minio.Core{Client: client}, bucket: cfg.Bucket, prefix: prefix}, nil
}

// Client is the minio-go client the store speaks through.
func (s *S3) Client() *minio.Client { return s.client }

func (s *S3) name(key string) string { return s.prefix + key }

// Put implements [Store].
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	if err := CheckKey(key); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("blob: s3: put: %w", err)
	}
	bufp := partBufs.Get().(*[]byte)
	defer partBufs.Put(bufp)
	buf := *bufp
	r = ctxReader{ctx, r}
	name := s.name(key)
	opts := minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		// The body's SHA-256 goes in the signature instead; this also keeps
		// minio-go from the aws-chunked streaming signature over plain
		// http, which not every S3-compatible server decodes in parts.
		DisableContentSha256: true,
	}

	n, eof, err := readFull(r, buf)
	if err != nil {
		return 0, fmt.Errorf("blob: s3: put: %w", err)
	}
	if eof {
		md5sum, sha := sums(buf[:n])
		if _, err := s.core.PutObject(ctx, s.bucket, name, bytes.NewReader(buf[:n]), int64(n), md5sum, sha, opts); err != nil {
			return 0, s3Err("put", err)
		}
		return int64(n), nil
	}

	uploadID, err := s.core.NewMultipartUpload(ctx, s.bucket, name, opts)
	if err != nil {
		return 0, s3Err("put", err)
	}
	completed := false
	defer func() {
		if !completed {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
			defer cancel()
			_ = s.core.AbortMultipartUpload(actx, s.bucket, name, uploadID)
		}
	}()
	var parts []minio.CompletePart
	var total int64
	for {
		if len(parts) == maxParts {
			return 0, fmt.Errorf("blob: s3: put: blob larger than %d parts of %d bytes", maxParts, partSize)
		}
		md5sum, sha := sums(buf[:n])
		part, err := s.core.PutObjectPart(ctx, s.bucket, name, uploadID, len(parts)+1,
			bytes.NewReader(buf[:n]), int64(n),
			minio.PutObjectPartOptions{Md5Base64: md5sum, Sha256Hex: sha, DisableContentSha256: true})
		if err != nil {
			return 0, s3Err("put", err)
		}
		parts = append(parts, minio.CompletePart{PartNumber: part.PartNumber, ETag: part.ETag})
		total += int64(n)
		if eof {
			break
		}
		n, eof, err = readFull(r, buf)
		if err != nil {
			return 0, fmt.Errorf("blob: s3: put: %w", err)
		}
		if eof && n == 0 {
			break // the last part was full; an empty part is not sent
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("blob: s3: put: %w", err)
	}
	if _, err := s.core.CompleteMultipartUpload(ctx, s.bucket, name, uploadID, parts, opts); err != nil {
		return 0, s3Err("put", err)
	}
	completed = true
	return total, nil
}

func sums(b []byte) (md5Base64, sha256Hex string) {
	m := md5.Sum(b)
	h := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(m[:]), hex.EncodeToString(h[:])
}

// Open implements [Store]. It sends the GET before it returns, so a
// missing blob is ErrNotFound here rather than at the first read.
func (s *S3) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("blob: s3: open: %w", err)
	}
	body, _, _, err := s.core.GetObject(ctx, s.bucket, s.name(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, s3Err("open", err)
	}
	return &s3Reader{body: body}, nil
}

// s3Reader keeps the request's URL, which names the key, out of errors.
type s3Reader struct {
	body io.ReadCloser
}

func (r *s3Reader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if err != nil && err != io.EOF {
		err = s3Err("read", err)
	}
	return n, err
}

func (r *s3Reader) Close() error {
	if err := r.body.Close(); err != nil {
		return s3Err("close", err)
	}
	return nil
}

// DeletePrefix implements [Store]: it lists the objects under the prefix
// and removes them in batches of up to 1,000 per request.
func (s *S3) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	if err := checkPrefix(prefix); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("blob: s3: delete: %w", err)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	objects := make(chan minio.ObjectInfo)
	listed := make(chan struct{})
	var listErr error
	go func() {
		defer close(listed)
		defer close(objects)
		for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{
			Prefix:    s.name(prefix),
			Recursive: true,
		}) {
			if o.Err != nil {
				listErr = o.Err
				cancel() // stops the listing, which would wait on its channel
				return
			}
			select {
			case objects <- o:
			case <-ctx.Done():
				return
			}
		}
	}()
	n := 0
	var rmErr error
	for res := range s.client.RemoveObjectsWithResult(ctx, s.bucket, objects, minio.RemoveObjectsOptions{}) {
		if res.Err != nil {
			if rmErr == nil {
				rmErr = res.Err
			}
			continue
		}
		n++
	}
	cancel() // the remover may have stopped early; so must the lister
	<-listed
	switch {
	case listErr != nil:
		return n, s3Err("delete", listErr)
	case rmErr != nil:
		return n, s3Err("delete", rmErr)
	}
	if err := parent.Err(); err != nil {
		return n, fmt.Errorf("blob: s3: delete: %w", err)
	}
	return n, nil
}

// s3Err wraps an error of minio-go, mapping a missing object to
// ErrNotFound and dropping the request's URL (which names the key).
func s3Err(op string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	resp := minio.ToErrorResponse(err)
	if resp.Code == minio.NoSuchKey || (resp.StatusCode == http.StatusNotFound && resp.Code != minio.NoSuchBucket) {
		return fmt.Errorf("%w (s3)", ErrNotFound)
	}
	if resp.Code != "" {
		// Its Error is the server's message; the key and bucket stay out.
		return fmt.Errorf("blob: s3: %s: %s (%s, HTTP %d)", op, resp.Error(), resp.Code, resp.StatusCode)
	}
	return fmt.Errorf("blob: s3: %s: %w", op, err)
}

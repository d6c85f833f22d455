package blob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"

	"github.com/lethe-dev/lethe/pkg/blob"
	"github.com/lethe-dev/lethe/pkg/blob/blobtest"
)

// fakeS3 is an S3-compatible server in the test process (gofakes3 over
// an in-memory backend), spoken to over HTTP with path-style addressing.
type fakeS3 struct {
	backend *s3mem.Backend
	srv     *httptest.Server

	mu       sync.Mutex
	parts    []int64 // sizes of the multipart parts uploaded
	buckets  atomic.Int64
	requests atomic.Int64
}

func newFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	f := &fakeS3{backend: s3mem.New()}
	h := gofakes3.New(f.backend).Server()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
			f.mu.Lock()
			f.parts = append(f.parts, r.ContentLength)
			f.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// bucket makes a new empty bucket.
func (f *fakeS3) bucket(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("bucket-%d", f.buckets.Add(1))
	if err := f.backend.CreateBucket(name); err != nil {
		t.Fatal(err)
	}
	return name
}

func (f *fakeS3) store(t *testing.T, prefix string) *blob.S3 {
	t.Helper()
	s, err := blob.NewS3(blob.S3Config{
		Endpoint:  f.srv.URL,
		Region:    "us-east-1",
		Bucket:    f.bucket(t),
		Prefix:    prefix,
		AccessKey: "test",
		SecretKey: "testtesttest",
		PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fakeS3) partSizes() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.parts...)
}

func TestS3Conformance(t *testing.T) {
	f := newFakeS3(t)
	t.Run("NoPrefix", func(t *testing.T) {
		blobtest.Run(t, func(t *testing.T) blob.Store { return f.store(t, "") })
	})
	t.Run("Prefix", func(t *testing.T) {
		blobtest.Run(t, func(t *testing.T) blob.Store { return f.store(t, "lethe/exports") })
	})
}

// objects lists the names of the objects in the store's bucket.
func objects(t *testing.T, s *blob.S3, bucket string) []string {
	t.Helper()
	var names []string
	for o := range s.Client().ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		names = append(names, o.Key)
	}
	return names
}

func TestS3PrefixIsPrependedAndKept(t *testing.T) {
	f := newFakeS3(t)
	bucket := f.bucket(t)
	open := func(prefix string) *blob.S3 {
		s, err := blob.NewS3(blob.S3Config{Endpoint: f.srv.URL, Region: "us-east-1", Bucket: bucket, Prefix: prefix,
			AccessKey: "test", SecretKey: "testtesttest", PathStyle: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := open("/tenant-a/"), open("tenant-b")
	blobtest.Put(t, a, "req-1/records.json", []byte("a"))
	blobtest.Put(t, b, "req-1/records.json", []byte("b"))
	names := objects(t, a, bucket)
	if strings.Join(names, " ") != "tenant-a/req-1/records.json tenant-b/req-1/records.json" {
		t.Errorf("objects %v", names)
	}
	if n, err := a.DeletePrefix(context.Background(), "req-1/"); n != 1 || err != nil {
		t.Errorf("DeletePrefix = %d, %v", n, err)
	}
	blobtest.Want(t, b, "req-1/records.json", []byte("b"))
	blobtest.WantNotFound(t, a, "req-1/records.json")

	for _, bad := range []string{"a//b", "../x", "a b"} {
		if _, err := blob.NewS3(blob.S3Config{Bucket: "b", Prefix: bad}); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("NewS3 with a bad prefix: %v", err)
		}
	}
}

// TestS3MultipartParts checks that a large blob of unknown size goes up in
// parts of 16 MiB, so a Put holds no more than a part in memory, and that
// a multipart upload whose source fails is aborted, leaving nothing.
func TestS3MultipartParts(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 40 MiB")
	}
	f := newFakeS3(t)
	s := f.store(t, "")
	data := blobtest.Random(7, 40<<20+5)
	// A reader with no Len or Seek: its size is unknown to the store.
	n, err := s.Put(context.Background(), "req-1/recording.mp4", struct{ *bytes.Reader }{bytes.NewReader(data)})
	if err != nil || n != int64(len(data)) {
		t.Fatalf("Put = %d, %v", n, err)
	}
	blobtest.Want(t, s, "req-1/recording.mp4", data)
	parts := f.partSizes()
	want := []int64{16 << 20, 16 << 20, 8<<20 + 5}
	if fmt.Sprint(parts) != fmt.Sprint(want) {
		t.Errorf("parts %v, want %v", parts, want)
	}

	// Exactly two parts' worth: no empty third part.
	f.mu.Lock()
	f.parts = nil
	f.mu.Unlock()
	blobtest.Put(t, s, "req-1/even", data[:32<<20])
	blobtest.Want(t, s, "req-1/even", data[:32<<20])
	if parts := f.partSizes(); fmt.Sprint(parts) != fmt.Sprint([]int64{16 << 20, 16 << 20}) {
		t.Errorf("parts %v, want two of 16 MiB", parts)
	}

	// A source failing, or a context cancelled, after a part: the
	// upload is aborted, and nothing of it stays on the server.
	core := minio.Core{Client: s.Client()}
	bucket := bucketOf(t, s)
	uploads := func() int {
		t.Helper()
		ups, err := core.ListMultipartUploads(context.Background(), bucket, "", "", "", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		return len(ups.Uploads)
	}
	// The server does list an upload under way.
	id, err := core.NewMultipartUpload(context.Background(), bucket, "probe", minio.PutObjectOptions{})
	if err != nil || uploads() != 1 {
		t.Fatalf("a started upload is not listed (%v)", err)
	}
	if err := core.AbortMultipartUpload(context.Background(), bucket, "probe", id); err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(context.Background(), "req-1/failed", &failAfterReader{data: data[:17<<20]})
	if err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	if n := uploads(); n != 0 {
		t.Errorf("%d multipart uploads left behind by a failed Put", n)
	}
	blobtest.WantNotFound(t, s, "req-1/failed")
	ctx, cancel := context.WithCancel(context.Background())
	_, err = s.Put(ctx, "req-1/cancelled", &cancelAfterReader{r: bytes.NewReader(data), n: 17 << 20, cancel: cancel})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Put = %v", err)
	}
	if n := uploads(); n != 0 {
		t.Errorf("%d multipart uploads left behind by a cancelled Put", n)
	}
	blobtest.WantNotFound(t, s, "req-1/cancelled")
}

func bucketOf(t *testing.T, s *blob.S3) string {
	t.Helper()
	bs, err := s.Client().ListBuckets(context.Background())
	if err != nil || len(bs) == 0 {
		t.Fatal(bs, err)
	}
	return bs[len(bs)-1].Name
}

// failAfterReader gives data, then fails.
type failAfterReader struct{ data []byte }

func (r *failAfterReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errors.New("source failed")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// cancelAfterReader cancels once it has given n bytes of r, and reads on.
type cancelAfterReader struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfterReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

func TestS3SmallBlobIsOneRequest(t *testing.T) {
	f := newFakeS3(t)
	s := f.store(t, "")
	before := f.requests.Load()
	blobtest.Put(t, s, "req-1/records.json", []byte(`{"name":"x"}`))
	if got := f.requests.Load() - before; got != 1 {
		t.Errorf("a small Put took %d requests, want 1", got)
	}
	if len(f.partSizes()) != 0 {
		t.Errorf("a small Put uploaded parts")
	}
}

func TestS3DeletePrefixManyObjects(t *testing.T) {
	f := newFakeS3(t)
	s := f.store(t, "p")
	const count = 1234 // more than one multi-delete batch of 1000
	for i := range count {
		blobtest.Put(t, s, "req-9/f/"+strconv.Itoa(i), []byte{byte(i)})
	}
	blobtest.Put(t, s, "req-90/keep", []byte("keep"))
	n, err := s.DeletePrefix(context.Background(), "req-9/")
	if err != nil || n != count {
		t.Fatalf("DeletePrefix = %d, %v; want %d", n, err, count)
	}
	blobtest.Want(t, s, "req-90/keep", []byte("keep"))
	blobtest.WantNotFound(t, s, "req-9/f/0")
}

func TestS3MissingBucket(t *testing.T) {
	f := newFakeS3(t)
	s, err := blob.NewS3(blob.S3Config{Endpoint: f.srv.URL, Region: "us-east-1", Bucket: "nope", AccessKey: "a", SecretKey: "b", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Open(context.Background(), "k")
	if err == nil || errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open in a missing bucket = %v, want an error other than ErrNotFound", err)
	}
}

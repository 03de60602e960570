package gcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// DefaultUnconditionalAttempts is how many read-generation-then-write rounds
// an unconditional Put makes before it gives up with ErrConflict because
// other writers keep replacing the object in between.
const DefaultUnconditionalAttempts = 5

// DefaultUploadTimeout bounds one Put's upload, retries included. The client
// library retries a single-request upload on 429/5xx until its context ends
// and ignores storage.WithMaxAttempts for it, so without a bound a Put
// against a failing service would never return. Five minutes carries 64 MiB
// over a 2 Mbit/s link.
const DefaultUploadTimeout = 5 * time.Minute

// uploadChunkQuantum is the granularity the JSON API requires of chunk sizes
// (googleapi.MinUploadChunkSize).
const uploadChunkQuantum = 256 << 10

// Bucket is a bucket.Bucket on a Google Cloud Storage bucket, optionally
// under a prefix: object "a/b" is stored as "<prefix>/a/b".
type Bucket struct {
	client *storage.Client
	handle *storage.BucketHandle
	name   string
	prefix string // "" or ending in "/"
	owned  bool   // Close closes client

	uploadTimeout time.Duration
}

var _ bucket.Bucket = (*Bucket)(nil)

// Option configures a Bucket.
type Option func(*Bucket)

// WithRetry sets the retry behaviour of every request (backoff, maximum
// attempts, policy) on top of the client's defaults. Uploads are always
// conditional, so the default policy, RetryIdempotent, already retries them.
func WithRetry(opts ...storage.RetryOption) Option {
	return func(b *Bucket) { b.handle = b.handle.Retryer(opts...) }
}

// WithUploadTimeout replaces DefaultUploadTimeout; d <= 0 leaves uploads
// bounded only by the caller's context.
func WithUploadTimeout(d time.Duration) Option {
	return func(b *Bucket) { b.uploadTimeout = d }
}

// New connects to Google Cloud Storage with Application Default Credentials
// (or, when STORAGE_EMULATOR_HOST is set, to that emulator, which the client
// library handles) and returns the bucket bucketName under prefix ("" for
// the bucket root). It does not check that the bucket exists. Close releases
// the client.
func New(ctx context.Context, bucketName, prefix string, opts ...Option) (*Bucket, error) {
	if err := checkBucketArgs(bucketName, prefix); err != nil {
		return nil, err
	}
	// JSON-API reads: supported in production, and the only reads an emulator
	// (STORAGE_EMULATOR_HOST) serves correctly for names with a slash.
	c, err := storage.NewClient(ctx, storage.WithJSONReads())
	if err != nil {
		return nil, fmt.Errorf("gcs: client for gs://%s: %w", bucketName, classify(err))
	}
	b := NewWithClient(c, bucketName, prefix, opts...)
	b.owned = true
	return b, nil
}

// NewWithClient returns the bucket bucketName under prefix on an existing
// client, which the caller keeps and closes. It panics if bucketName is
// empty or prefix is not a valid object name prefix (programming errors).
func NewWithClient(c *storage.Client, bucketName, prefix string, opts ...Option) *Bucket {
	if err := checkBucketArgs(bucketName, prefix); err != nil {
		panic(err)
	}
	p := strings.Trim(prefix, "/")
	if p != "" {
		p += "/"
	}
	b := &Bucket{client: c, handle: c.Bucket(bucketName), name: bucketName, prefix: p, uploadTimeout: DefaultUploadTimeout}
	for _, o := range opts {
		o(b)
	}
	return b
}

func checkBucketArgs(bucketName, prefix string) error {
	if bucketName == "" || strings.ContainsAny(bucketName, "/ ") {
		return fmt.Errorf("gcs: invalid bucket name %q", bucketName)
	}
	if p := strings.Trim(prefix, "/"); p != "" {
		if err := bucket.ValidateName(p); err != nil {
			return fmt.Errorf("gcs: prefix of gs://%s: %w", bucketName, err)
		}
	}
	return nil
}

// Close closes the client if New created it.
func (b *Bucket) Close() error {
	if b.owned {
		return b.client.Close()
	}
	return nil
}

// String implements bucket.Bucket: "gs://bucket" or "gs://bucket/prefix".
func (b *Bucket) String() string {
	return "gs://" + path.Join(b.name, b.prefix)
}

func (b *Bucket) object(name string) *storage.ObjectHandle {
	return b.handle.Object(b.prefix + name)
}

func (b *Bucket) fail(op, name string, err error) error {
	return fmt.Errorf("gcs: %s %q in %s: %w", op, name, b, classify(err))
}

func (b *Bucket) check(ctx context.Context, op, name string) error {
	if err := bucket.ValidateName(name); err != nil {
		return fmt.Errorf("gcs: %s in %s: %w", op, b, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gcs: %s %q in %s: %w", op, name, b, err)
	}
	return nil
}

func (b *Bucket) attrsOf(a *storage.ObjectAttrs) bucket.Attrs {
	return bucket.Attrs{
		Name:       strings.TrimPrefix(a.Name, b.prefix),
		Size:       a.Size,
		Generation: a.Generation,
		CRC32C:     a.CRC32C,
		Updated:    a.Updated,
	}
}

// Get implements bucket.Bucket. The bytes are checked against the CRC32C GCS
// reports for the generation read.
func (b *Bucket) Get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	if err := b.check(ctx, "get", name); err != nil {
		return nil, bucket.Attrs{}, err
	}
	r, err := b.object(name).NewReader(ctx)
	if err != nil {
		return nil, bucket.Attrs{}, b.fail("get", name, err)
	}
	defer r.Close()
	ra := r.Attrs
	if ra.Size < 0 { // size unknown (decompressive transcoding); we never write such objects
		return nil, bucket.Attrs{}, b.fail("get", name, fmt.Errorf("%w: GCS reports no size for generation %d", bucket.ErrChecksum, ra.Generation))
	}
	data := make([]byte, ra.Size)
	n, err := io.ReadFull(r, data)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, bucket.Attrs{}, b.fail("get", name, err)
	}
	data = data[:n]
	if extra, err := io.Copy(io.Discard, r); err != nil || extra != 0 {
		return nil, bucket.Attrs{}, b.fail("get", name, fmt.Errorf("%w: object longer than its reported size %d (%d more bytes, %v)", bucket.ErrChecksum, ra.Size, extra, err))
	}
	a := bucket.Attrs{Name: name, Size: int64(len(data)), Generation: ra.Generation, CRC32C: bucket.CRC32C(data), Updated: ra.LastModified}
	if a.Size != ra.Size || (ra.CRC32C != 0 && a.CRC32C != ra.CRC32C) {
		return nil, bucket.Attrs{}, b.fail("get", name, fmt.Errorf("%w: generation %d read %d bytes crc32c %#x, GCS reports %d bytes crc32c %#x",
			bucket.ErrChecksum, ra.Generation, a.Size, a.CRC32C, ra.Size, ra.CRC32C))
	}
	return data, a, nil
}

// Attrs implements bucket.Bucket.
func (b *Bucket) Attrs(ctx context.Context, name string) (bucket.Attrs, error) {
	if err := b.check(ctx, "attrs", name); err != nil {
		return bucket.Attrs{}, err
	}
	a, err := b.object(name).Attrs(ctx)
	if err != nil {
		return bucket.Attrs{}, b.fail("attrs", name, err)
	}
	return b.attrsOf(a), nil
}

// Put implements bucket.Bucket with one conditional upload (see the package
// comment). An unconditional Put reads the current generation and writes on
// the condition that it is still current, repeating if another writer
// slipped in, up to DefaultUnconditionalAttempts times.
func (b *Bucket) Put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	if err := b.check(ctx, "put", name); err != nil {
		return bucket.Attrs{}, err
	}
	if err := cond.Validate(); err != nil {
		return bucket.Attrs{}, b.fail("put", name, err)
	}
	if !cond.IsZero() {
		return b.put(ctx, name, data, cond)
	}
	var err error
	for range DefaultUnconditionalAttempts {
		var c bucket.Condition
		switch cur, aerr := b.object(name).Attrs(ctx); {
		case errors.Is(aerr, storage.ErrObjectNotExist):
			c = bucket.Condition{DoesNotExist: true}
		case aerr != nil:
			return bucket.Attrs{}, b.fail("put", name, fmt.Errorf("read current generation: %w", aerr))
		default:
			c = bucket.Condition{GenerationMatch: cur.Generation}
		}
		var a bucket.Attrs
		a, err = b.put(ctx, name, data, c)
		if !bucket.IsConflict(err) {
			return a, err
		}
	}
	return bucket.Attrs{}, err
}

// put makes one upload of data on cond (which is not zero).
func (b *Bucket) put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	crc := bucket.CRC32C(data)
	sc := storage.Conditions{DoesNotExist: cond.DoesNotExist, GenerationMatch: cond.GenerationMatch}
	obj := b.object(name).If(sc)

	wctx, cancel := context.WithCancel(ctx)
	if b.uploadTimeout > 0 {
		wctx, cancel = context.WithTimeout(ctx, b.uploadTimeout)
	}
	defer cancel()
	w := obj.NewWriter(wctx)
	// ChunkSize larger than the object makes the client buffer all of it
	// and send it in a single multipart request (gensupport treats data
	// that ends within the first chunk as one chunk): one round trip instead
	// of a resumable session's two or more, and the buffer lets the library
	// resend the whole request on a retryable error. Our objects are about
	// 100 KB to 64 MiB and already in memory, so the extra buffer is the
	// price of the retry. It must exceed len(data) (equal is not enough, the
	// client must see EOF inside the chunk) and be a multiple of 256 KiB.
	w.ChunkSize = (len(data)/uploadChunkQuantum + 1) * uploadChunkQuantum
	w.CRC32C = crc
	w.SendCRC32C = true
	w.ContentType = contentType(name)

	if _, err := w.Write(data); err != nil {
		cancel()
		_ = w.Close()
		return b.uploadFailed(ctx, name, data, crc, cond, err)
	}
	if err := w.Close(); err != nil {
		return b.uploadFailed(ctx, name, data, crc, cond, err)
	}
	got := w.Attrs()
	if got == nil {
		return bucket.Attrs{}, b.fail("put", name, errors.New("upload returned no attributes"))
	}
	if got.Size != int64(len(data)) || got.CRC32C != crc {
		return bucket.Attrs{}, b.fail("put", name, fmt.Errorf("%w: sent %d bytes crc32c %#x, generation %d stored %d bytes crc32c %#x",
			bucket.ErrChecksum, len(data), crc, got.Generation, got.Size, got.CRC32C))
	}
	return b.attrsOf(got), nil
}

// uploadFailed turns an upload error into the result. On a 412 the
// precondition failed, which is also what a retried upload sees if its first
// attempt succeeded but the response was lost: if the current object holds
// exactly our bytes (CRC32C and size), the Put has succeeded and the
// attributes of that object are returned; otherwise it is ErrConflict,
// naming the condition and the generation found.
func (b *Bucket) uploadFailed(ctx context.Context, name string, data []byte, crc uint32, cond bucket.Condition, err error) (bucket.Attrs, error) {
	if !isPreconditionFailed(err) {
		return bucket.Attrs{}, b.fail("put", name, err)
	}
	cur, aerr := b.object(name).Attrs(ctx)
	switch {
	case errors.Is(aerr, storage.ErrObjectNotExist):
		return bucket.Attrs{}, b.fail("put", name, fmt.Errorf("%s but the object does not exist: %w", cond, err))
	case aerr != nil:
		return bucket.Attrs{}, b.fail("put", name, fmt.Errorf("%s failed (%w) and reading the current generation failed too: %v", cond, err, aerr))
	case cur.Size == int64(len(data)) && cur.CRC32C == crc:
		return b.attrsOf(cur), nil
	}
	return bucket.Attrs{}, b.fail("put", name, fmt.Errorf("%s but current generation is %d (%d bytes, crc32c %#x; ours %d bytes, crc32c %#x): %w",
		cond, cur.Generation, cur.Size, cur.CRC32C, len(data), crc, err))
}

// Delete implements bucket.Bucket. With cond.GenerationMatch the delete
// carries ifGenerationMatch, which makes it atomic on GCS; it is preceded by
// a metadata read so that a mismatch is reported with the current
// generation, and so that emulators that ignore preconditions on delete
// (fake-gcs-server v1.56.1 does) still refuse a stale delete that is not
// racing.
func (b *Bucket) Delete(ctx context.Context, name string, cond bucket.Condition) error {
	if err := b.check(ctx, "delete", name); err != nil {
		return err
	}
	if err := bucket.ValidateDeleteCondition(cond); err != nil {
		return b.fail("delete", name, err)
	}
	obj := b.object(name)
	if cond.GenerationMatch != 0 {
		cur, err := obj.Attrs(ctx)
		if err != nil {
			return b.fail("delete", name, err)
		}
		if err := bucket.PreconditionError(cond, true, cur.Generation); err != nil {
			return b.fail("delete", name, err)
		}
		obj = obj.If(storage.Conditions{GenerationMatch: cond.GenerationMatch})
	}
	if err := obj.Delete(ctx); err != nil {
		return b.fail("delete", name, err)
	}
	return nil
}

// List implements bucket.Bucket: one paged listing of the objects under the
// bucket prefix plus prefix, asking only for the attributes Attrs carries.
func (b *Bucket) List(ctx context.Context, prefix string) ([]bucket.Attrs, error) {
	if err := bucket.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("gcs: list in %s: %w", b, err)
	}
	q := &storage.Query{Prefix: b.prefix + prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Generation", "CRC32C", "Updated"}); err != nil {
		return nil, fmt.Errorf("gcs: list %q in %s: %w", prefix, b, err)
	}
	it := b.handle.Objects(ctx, q)
	var out []bucket.Attrs
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("gcs: list %q in %s: %w", prefix, b, classify(err))
		}
		if a.Prefix != "" || !strings.HasPrefix(a.Name, b.prefix) {
			continue
		}
		out = append(out, b.attrsOf(a))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// contentType labels objects for people browsing the bucket; readers do not
// depend on it.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".parquet":
		return "application/vnd.apache.parquet"
	case ".json":
		return "application/json"
	}
	return "application/octet-stream"
}

package gcs

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// DefaultUnconditionalAttempts is how many read-generation-then-write rounds
// an unconditional Put or Delete makes before it gives up with ErrConflict
// because other writers keep replacing the object in between.
const DefaultUnconditionalAttempts = 5

// DefaultAttempts is how many times a Bucket sends a request that failed
// with a transient error (HTTP 408, 429 or 5xx, a timeout, or a connection
// that broke: EOF, reset, closed) before it reports ErrTransient. The client
// library's own retries are off: a Bucket retries every request itself, so
// that it knows when a write may have been applied although its answer was
// lost, and reads the object back to find out (see the package comment).
const DefaultAttempts = 8

// DefaultBackoff is the wait before the second attempt; it doubles with each
// further attempt, up to DefaultMaxBackoff, and each wait is drawn at random
// between half of it and all of it. With DefaultAttempts, a request is given
// up after about 11 to 23 seconds of failures.
const (
	DefaultBackoff    = 200 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// DefaultUploadTimeout bounds one Put's uploads, all attempts included;
// reading the object back afterwards is bounded only by the caller's
// context. Five minutes carries 64 MiB over a 2 Mbit/s link.
const DefaultUploadTimeout = 5 * time.Minute

// uploadChunkQuantum is the granularity the JSON API requires of chunk sizes
// (googleapi.MinUploadChunkSize).
const uploadChunkQuantum = 256 << 10

// writeIDKey is the custom metadata key under which every upload carries a
// random id of the Put that sent it: reading it back tells a Put whose answer
// was lost that the stored version is its own write, and not another
// writer's (even one of the same bytes).
const writeIDKey = "write-id"

// Bucket is a bucket.Bucket on a Google Cloud Storage bucket, optionally
// under a prefix: object "a/b" is stored as "<prefix>/a/b".
type Bucket struct {
	client *storage.Client
	handle *storage.BucketHandle
	name   string
	prefix string // "" or ending in "/"
	owned  bool   // Close closes client

	uploadTimeout time.Duration
	attempts      int
	backoff       time.Duration
	maxBackoff    time.Duration
}

var _ bucket.Bucket = (*Bucket)(nil)

// Option configures a Bucket.
type Option func(*Bucket)

// WithAttempts replaces DefaultAttempts, DefaultBackoff and DefaultMaxBackoff
// (values <= 0 keep the default).
func WithAttempts(attempts int, backoff, maxBackoff time.Duration) Option {
	return func(b *Bucket) {
		if attempts > 0 {
			b.attempts = attempts
		}
		if backoff > 0 {
			b.backoff = backoff
		}
		if maxBackoff > 0 {
			b.maxBackoff = maxBackoff
		}
	}
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
	b := &Bucket{client: c, name: bucketName, prefix: p, uploadTimeout: DefaultUploadTimeout,
		attempts: DefaultAttempts, backoff: DefaultBackoff, maxBackoff: DefaultMaxBackoff}
	// The library's retries would hide from us which writes were sent more
	// than once, and retry some requests until the context ends.
	b.handle = c.Bucket(bucketName).Retryer(storage.WithPolicy(storage.RetryNever))
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

// retry calls op until it succeeds, fails with an error that is not
// transient, or has been called b.attempts times, waiting between calls. It
// returns op's last error, or, if ctx ends while waiting, ctx's error with
// that one in the message.
func (b *Bucket) retry(ctx context.Context, op func() error) error {
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || !isTransient(err) || attempt >= b.attempts {
			return err
		}
		if werr := b.wait(ctx, attempt); werr != nil {
			return fmt.Errorf("%w (last: %v)", werr, err)
		}
	}
}

// wait sleeps before attempt+1, or returns early with an error wrapping
// ctx's if ctx ends.
func (b *Bucket) wait(ctx context.Context, attempt int) error {
	d := b.backoff
	for i := 1; i < attempt && d < b.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, b.maxBackoff)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("gave up waiting to retry after %d attempts: %w", attempt, ctx.Err())
	case <-t.C:
		return nil
	}
}

// Get implements bucket.Bucket. The bytes are checked against the CRC32C GCS
// reports for the generation read.
func (b *Bucket) Get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	if err := b.check(ctx, "get", name); err != nil {
		return nil, bucket.Attrs{}, err
	}
	var data []byte
	var a bucket.Attrs
	err := b.retry(ctx, func() error {
		var err error
		data, a, err = b.get(ctx, name)
		return err
	})
	if err != nil {
		return nil, bucket.Attrs{}, b.fail("get", name, err)
	}
	return data, a, nil
}

// get makes one read of the object.
func (b *Bucket) get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	r, err := b.object(name).NewReader(ctx)
	if err != nil {
		return nil, bucket.Attrs{}, err
	}
	defer r.Close()
	ra := r.Attrs
	if ra.Size < 0 { // size unknown (decompressive transcoding); we never write such objects
		return nil, bucket.Attrs{}, fmt.Errorf("%w: GCS reports no size for generation %d", bucket.ErrChecksum, ra.Generation)
	}
	data := make([]byte, ra.Size)
	n, err := io.ReadFull(r, data)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, bucket.Attrs{}, err
	}
	data = data[:n]
	if extra, err := io.Copy(io.Discard, r); err != nil || extra != 0 {
		return nil, bucket.Attrs{}, fmt.Errorf("%w: object longer than its reported size %d (%d more bytes, %v)", bucket.ErrChecksum, ra.Size, extra, err)
	}
	a := bucket.Attrs{Name: name, Size: int64(len(data)), Generation: ra.Generation, CRC32C: bucket.CRC32C(data), Updated: ra.LastModified}
	if a.Size != ra.Size || (ra.CRC32C != 0 && a.CRC32C != ra.CRC32C) {
		return nil, bucket.Attrs{}, fmt.Errorf("%w: generation %d read %d bytes crc32c %#x, GCS reports %d bytes crc32c %#x",
			bucket.ErrChecksum, ra.Generation, a.Size, a.CRC32C, ra.Size, ra.CRC32C)
	}
	return data, a, nil
}

// GetRange implements bucket.Bucket with one ranged download (NewRangeReader),
// sent again while it fails transiently. A non-zero generation is asked for both
// as the generation to read and as ifGenerationMatch: GCS answers 404 once that
// generation is gone (a bucket without object versioning) and 412 once another
// is current; a 404 is told apart from a missing object by reading the current
// generation. A range that starts past the end (GCS's 416) returns no bytes.
func (b *Bucket) GetRange(ctx context.Context, name string, generation, offset, length int64) ([]byte, error) {
	if err := b.check(ctx, "get range", name); err != nil {
		return nil, err
	}
	if err := bucket.CheckRange(generation, offset, length); err != nil {
		return nil, b.fail("get range", name, err)
	}
	var data []byte
	err := b.retry(ctx, func() error {
		var err error
		data, err = b.getRange(ctx, name, generation, offset, length)
		return err
	})
	switch {
	case err == nil:
		return data, nil
	case generation != 0 && (isPreconditionFailed(err) || errors.Is(err, storage.ErrObjectNotExist)):
		cur, aerr := b.attrs(ctx, name)
		switch {
		case aerr == nil && cur.Generation != generation:
			return nil, b.fail("get range", name, bucket.StaleGeneration(generation, cur.Generation))
		case aerr != nil && !errors.Is(aerr, storage.ErrObjectNotExist):
			return nil, b.fail("get range", name, fmt.Errorf("%w; reading the current generation failed too: %v", err, aerr))
		}
	}
	return nil, b.fail("get range", name, err)
}

// getRange makes one ranged read of the object.
func (b *Bucket) getRange(ctx context.Context, name string, generation, offset, length int64) ([]byte, error) {
	if length == 0 {
		// The client library asks for the whole object when length is 0; ask
		// only whether it exists in the generation wanted.
		a, err := b.object(name).Attrs(ctx)
		if err == nil && generation != 0 && a.Generation != generation {
			return nil, bucket.StaleGeneration(generation, a.Generation)
		}
		return []byte{}, err
	}
	o := b.object(name)
	if generation != 0 {
		o = o.Generation(generation).If(storage.Conditions{GenerationMatch: generation})
	}
	r, err := o.NewRangeReader(ctx, offset, length)
	var gerr *googleapi.Error
	if errors.As(err, &gerr) && gerr.Code == http.StatusRequestedRangeNotSatisfiable {
		return []byte{}, nil // starts at or past the end
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if generation != 0 && r.Attrs.Generation != generation {
		return nil, fmt.Errorf("%w: asked for generation %d, GCS served %d", bucket.ErrConflict, generation, r.Attrs.Generation)
	}
	want := max(0, min(length, r.Attrs.Size-offset))
	data := make([]byte, want)
	n, err := io.ReadFull(r, data)
	if err != nil {
		return nil, fmt.Errorf("read %d of %d bytes at %d: %w", n, want, offset, err)
	}
	if extra, err := io.Copy(io.Discard, r); err != nil || extra != 0 {
		return nil, fmt.Errorf("%w: range at %d of %d bytes of a %d-byte object gave %d more bytes (%v)", bucket.ErrChecksum, offset, want, r.Attrs.Size, extra, err)
	}
	return data, nil
}

// attrs reads the object's current metadata, retrying transient failures.
func (b *Bucket) attrs(ctx context.Context, name string) (*storage.ObjectAttrs, error) {
	var a *storage.ObjectAttrs
	err := b.retry(ctx, func() error {
		var err error
		a, err = b.object(name).Attrs(ctx)
		return err
	})
	return a, err
}

// Attrs implements bucket.Bucket.
func (b *Bucket) Attrs(ctx context.Context, name string) (bucket.Attrs, error) {
	if err := b.check(ctx, "attrs", name); err != nil {
		return bucket.Attrs{}, err
	}
	a, err := b.attrs(ctx, name)
	if err != nil {
		return bucket.Attrs{}, b.fail("attrs", name, err)
	}
	return b.attrsOf(a), nil
}

// Put implements bucket.Bucket with conditional uploads (see the package
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
		a, err := b.put(ctx, name, data, cond)
		if err != nil {
			return bucket.Attrs{}, b.fail("put", name, err)
		}
		return a, nil
	}
	var err error
	for range DefaultUnconditionalAttempts {
		var c bucket.Condition
		switch cur, aerr := b.attrs(ctx, name); {
		case errors.Is(aerr, storage.ErrObjectNotExist):
			c = bucket.Condition{DoesNotExist: true}
		case aerr != nil:
			return bucket.Attrs{}, b.fail("put", name, fmt.Errorf("read current generation: %w", aerr))
		default:
			c = bucket.Condition{GenerationMatch: cur.Generation}
		}
		var a bucket.Attrs
		a, err = b.put(ctx, name, data, c)
		if err == nil {
			return a, nil
		}
		if !isPreconditionFailed(err) {
			break
		}
	}
	return bucket.Attrs{}, b.fail("put", name, err)
}

// put stores data on cond (which is not zero), sending the upload up to
// b.attempts times while it fails transiently. A write whose answer is lost
// may have been applied all the same: its retry then fails the precondition
// (412). So on a 412, and when every attempt failed, put reads the object
// back, and if the current version is this Put's own write (its write id,
// size and CRC32C, and, on GenerationMatch, a newer generation than the
// condition's) the Put has succeeded.
func (b *Bucket) put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	crc := bucket.CRC32C(data)
	id := newWriteID()
	uctx, cancel := context.WithCancel(ctx)
	if b.uploadTimeout > 0 {
		uctx, cancel = context.WithTimeout(ctx, b.uploadTimeout)
	}
	defer cancel()
	var err error
	attempt := 1
	for ; ; attempt++ {
		var a bucket.Attrs
		a, err = b.upload(uctx, name, data, crc, id, cond)
		if err == nil {
			return a, nil
		}
		if isPreconditionFailed(err) {
			return b.readBack(ctx, name, data, crc, id, cond, err)
		}
		if !isTransient(err) || attempt >= b.attempts {
			break
		}
		if werr := b.wait(uctx, attempt); werr != nil {
			if ctx.Err() != nil { // the caller gave up: no time to read back
				return bucket.Attrs{}, fmt.Errorf("%w (last: %v)", werr, err)
			}
			break // the upload timeout ended: read back
		}
	}
	if !isTransient(err) {
		return bucket.Attrs{}, err
	}
	return b.readBack(ctx, name, data, crc, id, cond, fmt.Errorf("upload failed %d times, last: %w", attempt, err))
}

// upload makes one upload request of data, carrying cond, the CRC32C and the
// write id.
func (b *Bucket) upload(ctx context.Context, name string, data []byte, crc uint32, id string, cond bucket.Condition) (bucket.Attrs, error) {
	sc := storage.Conditions{DoesNotExist: cond.DoesNotExist, GenerationMatch: cond.GenerationMatch}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := b.object(name).If(sc).NewWriter(wctx)
	// ChunkSize larger than the object makes the client buffer all of it
	// and send it in a single multipart request (gensupport treats data
	// that ends within the first chunk as one chunk): one round trip instead
	// of a resumable session's two or more, which also makes the request
	// whole to resend. Our objects are about 100 KB to 64 MiB and already in
	// memory, so the extra buffer is affordable. It must exceed len(data)
	// (equal is not enough, the client must see EOF inside the chunk) and be
	// a multiple of 256 KiB.
	w.ChunkSize = (len(data)/uploadChunkQuantum + 1) * uploadChunkQuantum
	w.CRC32C = crc
	w.SendCRC32C = true
	w.ContentType = contentType(name)
	w.Metadata = map[string]string{writeIDKey: id}

	if _, err := w.Write(data); err != nil {
		cancel()
		_ = w.Close()
		return bucket.Attrs{}, err
	}
	if err := w.Close(); err != nil {
		return bucket.Attrs{}, err
	}
	got := w.Attrs()
	if got == nil {
		return bucket.Attrs{}, errors.New("upload returned no attributes")
	}
	if got.Size != int64(len(data)) || got.CRC32C != crc {
		return bucket.Attrs{}, fmt.Errorf("%w: sent %d bytes crc32c %#x, generation %d stored %d bytes crc32c %#x",
			bucket.ErrChecksum, len(data), crc, got.Generation, got.Size, got.CRC32C)
	}
	return b.attrsOf(got), nil
}

// readBack decides a Put whose upload failed with cause, a 412 or a
// transient error after the last attempt: if the object's current version is
// this Put's write, the Put succeeded and its attributes are returned.
// Otherwise a 412 is ErrConflict, naming the condition and the generation
// found, and a transient cause is returned (the write was not stored, or, if
// reading back failed too, it is unknown whether it was).
func (b *Bucket) readBack(ctx context.Context, name string, data []byte, crc uint32, id string, cond bucket.Condition, cause error) (bucket.Attrs, error) {
	cur, err := b.attrs(ctx, name)
	switch {
	case err == nil && cur.Metadata[writeIDKey] == id && cur.Size == int64(len(data)) && cur.CRC32C == crc &&
		(cond.GenerationMatch == 0 || cur.Generation > cond.GenerationMatch):
		return b.attrsOf(cur), nil
	case !isPreconditionFailed(cause) && (err == nil || errors.Is(err, storage.ErrObjectNotExist)):
		return bucket.Attrs{}, fmt.Errorf("%w; the object does not hold this write", cause)
	case !isPreconditionFailed(cause):
		return bucket.Attrs{}, fmt.Errorf("%w; whether it was stored is unknown, reading it back failed: %v", cause, err)
	case errors.Is(err, storage.ErrObjectNotExist):
		return bucket.Attrs{}, fmt.Errorf("%s but the object does not exist: %w", cond, cause)
	case err != nil:
		return bucket.Attrs{}, fmt.Errorf("%s failed (%w) and reading the current generation failed too: %v", cond, cause, err)
	}
	return bucket.Attrs{}, fmt.Errorf("%s but current generation is %d (%d bytes, crc32c %#x; ours %d bytes, crc32c %#x): %w",
		cond, cur.Generation, cur.Size, cur.CRC32C, len(data), crc, cause)
}

// newWriteID returns a random id for one Put.
func newWriteID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Delete implements bucket.Bucket. Each round reads the current generation
// and deletes on ifGenerationMatch of it, which makes the delete atomic on
// GCS and safe to resend; the read also reports a mismatch of
// cond.GenerationMatch with the current generation, and keeps emulators that
// ignore preconditions on delete (fake-gcs-server v1.56.1 does) from a stale
// delete that is not racing. A delete that failed transiently is sent again;
// if the object is then gone, the earlier delete whose answer was lost
// removed it, and Delete succeeds. A 404 answer to a delete of the
// generation just read also counts as done: that generation is gone. An
// unconditional Delete whose object is replaced between the read and the
// delete starts over, up to DefaultUnconditionalAttempts times.
func (b *Bucket) Delete(ctx context.Context, name string, cond bucket.Condition) error {
	if err := b.check(ctx, "delete", name); err != nil {
		return err
	}
	if err := bucket.ValidateDeleteCondition(cond); err != nil {
		return b.fail("delete", name, err)
	}
	sent := false // a delete request failed transiently: it may have been applied
	transient, conflicts := 0, 0
	for {
		cur, err := b.attrs(ctx, name)
		switch {
		case errors.Is(err, storage.ErrObjectNotExist) && sent:
			return nil
		case err != nil:
			return b.fail("delete", name, err)
		}
		if err := bucket.PreconditionError(cond, true, cur.Generation); err != nil {
			return b.fail("delete", name, err)
		}
		err = b.object(name).If(storage.Conditions{GenerationMatch: cur.Generation}).Delete(ctx)
		switch {
		case err == nil, errors.Is(err, storage.ErrObjectNotExist):
			return nil
		case isPreconditionFailed(err):
			// Replaced since the read: a conditional Delete's next read
			// reports the conflict, an unconditional one starts over.
			if conflicts++; conflicts >= DefaultUnconditionalAttempts {
				return b.fail("delete", name, err)
			}
			continue
		case !isTransient(err):
			return b.fail("delete", name, err)
		}
		sent = true
		if transient++; transient >= b.attempts {
			return b.fail("delete", name, fmt.Errorf("delete failed %d times, last: %w", transient, err))
		}
		if werr := b.wait(ctx, transient); werr != nil {
			return b.fail("delete", name, fmt.Errorf("%w (last: %v)", werr, err))
		}
	}
}

// List implements bucket.Bucket: one paged listing of the objects under the
// bucket prefix plus prefix, asking only for the attributes Attrs carries,
// started over if a page fails transiently.
func (b *Bucket) List(ctx context.Context, prefix string) ([]bucket.Attrs, error) {
	return b.ListFrom(ctx, prefix, "")
}

// ListFrom implements bucket.Bucket with the listing's startOffset: GCS pages
// only through the names at or after start.
func (b *Bucket) ListFrom(ctx context.Context, prefix, start string) ([]bucket.Attrs, error) {
	if err := bucket.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("gcs: list in %s: %w", b, err)
	}
	q := &storage.Query{Prefix: b.prefix + prefix}
	if start != "" {
		q.StartOffset = b.prefix + start
	}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Generation", "CRC32C", "Updated"}); err != nil {
		return nil, fmt.Errorf("gcs: list %q in %s: %w", prefix, b, err)
	}
	var out []bucket.Attrs
	err := b.retry(ctx, func() error {
		out = nil
		it := b.handle.Objects(ctx, q)
		for {
			a, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return nil
			}
			if err != nil {
				return err
			}
			if a.Prefix != "" || !strings.HasPrefix(a.Name, b.prefix) {
				continue
			}
			out = append(out, b.attrsOf(a))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("gcs: list %q in %s: %w", prefix, b, classify(err))
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

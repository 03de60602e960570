package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// LockFileName is the file in a Local bucket's root directory that writers
// lock (flock) around compare-and-rename. List never shows it.
const LockFileName = ".bucket.lock"

// WritersFileName is the file in a Local bucket's root directory that every Put
// holds a shared flock on while its temp file exists, and that CleanTemp locks
// exclusively: temp files are removed only when no writer of any process has one
// in flight. List never shows it.
const WritersFileName = ".bucket.writers"

// tempMarker is what every temp file's base name contains. Temp files are
// named ".<base>.tmp-<random>": hidden, and ending in digits, so no glob for
// *.parquet or *.json matches one.
const tempMarker = ".tmp-"

// Local is a Bucket on a directory of the local file system. Object
// "a/b/c.parquet" is the file <dir>/a/b/c.parquet, so the directory is itself
// the dataset analysts glob.
//
// Put writes a temp file in the target's directory, fsyncs it, renames it
// over the target and fsyncs the directory: a reader, or a glob, sees the old
// file or the new one, never a partial one, even if the process is killed.
//
// An object's Generation is its file's modification time in Unix
// nanoseconds, forced before the rename to max(now, previous+1) so that it is
// strictly increasing per name (assuming the clock does not step back past
// a deleted object's generation). Every Put and Delete holds an exclusive
// flock on <dir>/.bucket.lock (and an in-process lock) across
// compare-and-rename, so writers in several processes sharing the directory
// get compare-and-swap semantics. Readers take no lock.
//
// CRC32C is computed from the bytes; on Linux it is cached in a user extended
// attribute keyed by generation and size, so Attrs and List need not read
// whole files (where the file system has no xattrs they do).
type Local struct {
	dir string
	sem chan struct{} // in-process half of the write lock

	// writeData writes the temp file's contents; tests replace it to inject
	// failures such as ENOSPC.
	writeData func(f *os.File, data []byte) error

	fault atomic.Pointer[Fault] // see SetFault
}

// Fault is a test seam on a Local bucket's write path, for testing how callers
// cope with a file system that is full or read-only without mounting one
// (which needs root). Local calls it before each file operation that changes
// the file system: op is "mkdir", "open" (the temp file, just created, or the
// lock file), "write", "rename" or "remove"; path is the file's path and n the
// number of bytes a "write" is about to write. A non-zero errno makes that
// operation fail with an *os.PathError carrying it, as the os package reports
// a real failure, and the Put or Delete fails as it would on such a file
// system: naming the object, the previous version in place, no temp file
// left. A failing "write" first writes written of the n bytes, as a file
// system that fills up mid-write does. errno 0 lets the operation proceed
// (written is then ignored). A Fault must be safe for concurrent use.
type Fault func(op, path string, n int) (written int, errno syscall.Errno)

// SetFault installs f on l's write path; nil removes it. Tests only: see Fault.
func (l *Local) SetFault(f Fault) {
	if f == nil {
		l.fault.Store(nil)
		return
	}
	l.fault.Store(&f)
}

// injected returns the failure the installed Fault asks for, if any.
func (l *Local) injected(op, path string, n int) (int, error) {
	f := l.fault.Load()
	if f == nil {
		return 0, nil
	}
	written, errno := (*f)(op, path, n)
	if errno == 0 {
		return 0, nil
	}
	return max(0, min(written, n)), &os.PathError{Op: op, Path: path, Err: errno}
}

var _ Bucket = (*Local)(nil)

// NewLocal returns a Local bucket rooted at dir, creating dir if needed.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("bucket: local directory not given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("bucket: local directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("bucket: local directory %q: %w", abs, classifyOS(err, false))
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("bucket: local directory %q: %w", abs, classifyOS(err, false))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("bucket: local directory %q is not a directory", abs)
	}
	return &Local{dir: abs, sem: make(chan struct{}, 1), writeData: writeAll}, nil
}

func writeAll(f *os.File, data []byte) error {
	_, err := f.Write(data)
	return err
}

// Dir returns the bucket's root directory (absolute).
func (l *Local) Dir() string { return l.dir }

// String implements Bucket.
func (l *Local) String() string { return "file://" + filepath.ToSlash(l.dir) }

// Path returns the file path that holds object name.
func (l *Local) Path(name string) (string, error) {
	if err := l.validate(name); err != nil {
		return "", err
	}
	return l.path(name), nil
}

func (l *Local) path(name string) string {
	return filepath.Join(l.dir, filepath.FromSlash(name))
}

// validate applies ValidateName and rejects the names Local reserves: its
// lock file and anything named like a temp file.
func (l *Local) validate(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if name == LockFileName || name == WritersFileName {
		return fmt.Errorf("%w %q: reserved for the lock files", ErrInvalidName, name)
	}
	if isTempName(name[strings.LastIndexByte(name, '/')+1:]) {
		return fmt.Errorf("%w %q: looks like a temp file", ErrInvalidName, name)
	}
	return nil
}

func isTempName(base string) bool {
	return strings.HasPrefix(base, ".") && strings.Contains(base, tempMarker)
}

// Get implements Bucket.
func (l *Local) Get(ctx context.Context, name string) ([]byte, Attrs, error) {
	if err := l.check(ctx, "get", name); err != nil {
		return nil, Attrs{}, err
	}
	f, fi, err := l.open(name)
	if err != nil {
		return nil, Attrs{}, l.wrap("get", name, err)
	}
	defer f.Close()
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, Attrs{}, l.wrap("get", name, err)
	}
	return data, attrsOf(name, fi, CRC32C(data)), nil
}

// GetRange implements Bucket with one positioned read (pread) of the object's
// file. The generation is the file's modification time, read from the open
// file: a Put renames a new file over the name and never changes an existing
// one, so the bytes read belong to the generation checked.
func (l *Local) GetRange(ctx context.Context, name string, generation, offset, length int64) ([]byte, error) {
	if err := l.check(ctx, "get range", name); err != nil {
		return nil, err
	}
	if err := CheckRange(generation, offset, length); err != nil {
		return nil, l.wrap("get range", name, err)
	}
	f, fi, err := l.open(name)
	if err != nil {
		return nil, l.wrap("get range", name, err)
	}
	defer f.Close()
	if cur := fi.ModTime().UnixNano(); generation != 0 && generation != cur {
		return nil, l.wrap("get range", name, StaleGeneration(generation, cur))
	}
	if offset >= fi.Size() {
		return []byte{}, nil
	}
	data := make([]byte, min(length, fi.Size()-offset))
	n, err := f.ReadAt(data, offset)
	if n < len(data) {
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: read %d of %d bytes at %d: the file is shorter than it was", ErrChecksum, n, len(data), offset)
		}
		return nil, l.wrap("get range", name, err)
	}
	return data, nil
}

// Attrs implements Bucket.
func (l *Local) Attrs(ctx context.Context, name string) (Attrs, error) {
	if err := l.check(ctx, "attrs", name); err != nil {
		return Attrs{}, err
	}
	a, err := l.attrs(ctx, name)
	if err != nil {
		return Attrs{}, l.wrap("attrs", name, err)
	}
	return a, nil
}

// attrs opens the file and returns its attributes, hashing it unless the
// CRC32C cache matches this generation.
func (l *Local) attrs(ctx context.Context, name string) (Attrs, error) {
	f, fi, err := l.open(name)
	if err != nil {
		return Attrs{}, err
	}
	defer f.Close()
	gen := fi.ModTime().UnixNano()
	if crc, ok := readCRCCache(f.Name(), gen, fi.Size()); ok {
		return attrsOf(name, fi, crc), nil
	}
	h := crc32cHash()
	n, err := io.Copy(h, &ctxReader{ctx: ctx, r: f})
	if err != nil {
		return Attrs{}, err
	}
	if n != fi.Size() {
		return Attrs{}, fmt.Errorf("%w: read %d bytes, file has %d", ErrChecksum, n, fi.Size())
	}
	return attrsOf(name, fi, h.Sum32()), nil
}

// open opens an object's file for reading; a directory or other non-regular
// file at that path is reported as not existing.
func (l *Local) open(name string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(l.path(name))
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file: %w", f.Name(), fs.ErrNotExist)
	}
	return f, fi, nil
}

func attrsOf(name string, fi os.FileInfo, crc uint32) Attrs {
	return Attrs{Name: name, Size: fi.Size(), Generation: fi.ModTime().UnixNano(), CRC32C: crc, Updated: fi.ModTime()}
}

// Put implements Bucket.
func (l *Local) Put(ctx context.Context, name string, data []byte, cond Condition) (Attrs, error) {
	if err := l.check(ctx, "put", name); err != nil {
		return Attrs{}, err
	}
	if err := cond.Validate(); err != nil {
		return Attrs{}, l.wrap("put", name, err)
	}
	a, err := l.put(ctx, name, data, cond)
	if err != nil {
		return Attrs{}, l.wrap("put", name, err)
	}
	return a, nil
}

func (l *Local) put(ctx context.Context, name string, data []byte, cond Condition) (_ Attrs, err error) {
	target := l.path(name)
	parent := filepath.Dir(target)
	if err := l.mkdirAll(parent); err != nil {
		return Attrs{}, err
	}
	base := filepath.Base(target)
	// Held until the temp file is renamed or removed: CleanTemp waits for it.
	releaseWriters, err := flockShared(ctx, filepath.Join(l.dir, WritersFileName))
	if err != nil {
		return Attrs{}, fmt.Errorf("lock %s: %w", WritersFileName, err)
	}
	defer releaseWriters()
	f, err := os.CreateTemp(parent, "."+base+tempMarker+"*")
	if err != nil {
		return Attrs{}, err
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := l.injected("open", tmp, 0); err != nil {
		return Attrs{}, err
	}
	if err := f.Chmod(0o644); err != nil {
		return Attrs{}, err
	}
	if n, err := l.injected("write", tmp, len(data)); err != nil {
		_ = l.writeData(f, data[:n])
		return Attrs{}, err
	}
	if err := l.writeData(f, data); err != nil {
		return Attrs{}, err
	}
	if err := f.Sync(); err != nil {
		return Attrs{}, err
	}
	crc := CRC32C(data)

	unlock, err := l.lock(ctx)
	if err != nil {
		return Attrs{}, err
	}
	defer unlock()
	if err := ctx.Err(); err != nil {
		return Attrs{}, err
	}
	prev, exists, err := currentGeneration(target)
	if err != nil {
		return Attrs{}, err
	}
	if err := precondition(cond, exists, prev); err != nil {
		return Attrs{}, err
	}
	gen, err := setGeneration(tmp, prev)
	if err != nil {
		return Attrs{}, err
	}
	writeCRCCache(tmp, gen, int64(len(data)), crc)
	if err := f.Sync(); err != nil { // persist the new mtime (and xattr) with the data
		return Attrs{}, err
	}
	if err := f.Close(); err != nil {
		return Attrs{}, err
	}
	if _, err := l.injected("rename", tmp, 0); err != nil {
		return Attrs{}, err
	}
	if err := os.Rename(tmp, target); err != nil {
		return Attrs{}, err
	}
	renamed = true
	if err := syncDir(parent); err != nil {
		return Attrs{}, err
	}
	return Attrs{Name: name, Size: int64(len(data)), Generation: gen, CRC32C: crc, Updated: time.Unix(0, gen)}, nil
}

// currentGeneration returns the generation of the file at path, if any.
func currentGeneration(path string) (int64, bool, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	case !fi.Mode().IsRegular():
		return 0, false, fmt.Errorf("%s is not a regular file", path)
	}
	return fi.ModTime().UnixNano(), true, nil
}

// setGeneration sets the modification time of the file at path to
// max(now, prev+1) and returns the generation the file system actually
// recorded. If the file system's timestamps are coarser than a nanosecond,
// it steps further ahead until the recorded time exceeds prev.
func setGeneration(path string, prev int64) (int64, error) {
	want := max(time.Now().UnixNano(), prev+1)
	for _, step := range []int64{0, 1e3, 1e6, 1e9, 2e9} {
		t := time.Unix(0, max(want, prev+step))
		if err := os.Chtimes(path, t, t); err != nil {
			return 0, err
		}
		fi, err := os.Stat(path)
		if err != nil {
			return 0, err
		}
		if got := fi.ModTime().UnixNano(); got > prev {
			return got, nil
		}
	}
	return 0, fmt.Errorf("file system cannot record a modification time after %d", prev)
}

// mkdirAll creates dir and its missing parents under the bucket root, and
// fsyncs the parent of each directory it creates so that the new entry
// survives a crash.
func (l *Local) mkdirAll(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir && len(parent) >= len(l.dir) {
		if err := l.mkdirAll(parent); err != nil {
			return err
		}
	}
	if _, err := l.injected("mkdir", dir, 0); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // a concurrent Put made it
		}
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Delete implements Bucket.
func (l *Local) Delete(ctx context.Context, name string, cond Condition) error {
	if err := l.check(ctx, "delete", name); err != nil {
		return err
	}
	if err := validateDeleteCondition(cond); err != nil {
		return l.wrap("delete", name, err)
	}
	if err := l.delete(ctx, name, cond); err != nil {
		return l.wrap("delete", name, err)
	}
	return nil
}

func (l *Local) delete(ctx context.Context, name string, cond Condition) error {
	target := l.path(name)
	unlock, err := l.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	gen, exists, err := currentGeneration(target)
	if err != nil {
		return err
	}
	if !exists {
		return ErrNotFound
	}
	if err := precondition(cond, exists, gen); err != nil {
		return err
	}
	if _, err := l.injected("remove", target, 0); err != nil {
		return err
	}
	if err := os.Remove(target); err != nil {
		return err
	}
	return syncDir(filepath.Dir(target))
}

// List implements Bucket. Attributes of an object that disappears while
// listing are left out.
func (l *Local) List(ctx context.Context, prefix string) ([]Attrs, error) {
	return l.ListFrom(ctx, prefix, "")
}

// ListFrom implements Bucket. Directories whose names all sort before start are
// not entered, and names before start are not stat'ed.
func (l *Local) ListFrom(ctx context.Context, prefix, start string) ([]Attrs, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("bucket: list in %s: %w", l, err)
	}
	var out []Attrs
	err := l.walkFrom(ctx, prefix, start, func(rel string, d fs.DirEntry) error {
		if rel < start || isTempName(d.Name()) || rel == LockFileName || rel == WritersFileName || !d.Type().IsRegular() {
			return nil
		}
		a, err := l.attrs(ctx, rel)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%q: %w", rel, err)
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bucket: list %q in %s: %w", prefix, l, classifyOS(err, false))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// walk calls fn for every non-directory entry whose slash-separated name
// relative to the root starts with prefix. It starts at the deepest
// directory the prefix names, so listing one partition does not walk the
// whole dataset.
func (l *Local) walk(ctx context.Context, prefix string, fn func(rel string, d fs.DirEntry) error) error {
	return l.walkFrom(ctx, prefix, "", fn)
}

// walkFrom is walk that skips the directories whose entries' names all sort
// before from.
func (l *Local) walkFrom(ctx context.Context, prefix, from string, fn func(rel string, d fs.DirEntry) error) error {
	root := l.dir
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		root = l.path(prefix[:i])
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // start does not exist, or a directory vanished
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		rel, rerr := filepath.Rel(l.dir, path)
		if rerr != nil {
			return rerr
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && !strings.HasPrefix(rel+"/", prefix) && !strings.HasPrefix(prefix, rel+"/") {
				return filepath.SkipDir
			}
			if dir := rel + "/"; rel != "." && dir < from && !strings.HasPrefix(from, dir) {
				return filepath.SkipDir // every name in it sorts before from
			}
			return nil
		}
		if !strings.HasPrefix(rel, prefix) {
			return nil
		}
		return fn(rel, d)
	})
	return err
}

// TempFiles returns the names, relative to the root and slash-separated, of
// temp files left by interrupted Puts (or in flight now), sorted. They are
// invisible to List and to globs for *.parquet and *.json; an operator's
// verify reports them and CleanTemp removes them.
func (l *Local) TempFiles(ctx context.Context) ([]string, error) {
	var out []string
	err := l.walk(ctx, "", func(rel string, d fs.DirEntry) error {
		if isTempName(d.Name()) {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bucket: temp files in %s: %w", l, classifyOS(err, false))
	}
	sort.Strings(out)
	return out, nil
}

// cleanTempWait bounds how long CleanTemp waits for writes in flight to end.
const cleanTempWait = 2 * time.Second

// CleanTemp removes temp files last modified more than olderThan ago and
// returns their names. It never removes the temp file of a Put in flight, in
// this process or another: it takes the writers' lock exclusively, waiting up
// to cleanTempWait for writes in flight to end, and removes nothing (no error)
// if they do not: a later call cleans up.
func (l *Local) CleanTemp(ctx context.Context, olderThan time.Duration) (removed []string, err error) {
	wctx, cancel := context.WithTimeout(ctx, cleanTempWait)
	release, err := flockFile(wctx, filepath.Join(l.dir, WritersFileName))
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, nil // writers kept writing: leave their temp files alone
		}
		return nil, fmt.Errorf("bucket: clean temp in %s: lock %s: %w", l, WritersFileName, err)
	}
	defer release()
	names, err := l.TempFiles(ctx)
	if err != nil {
		return nil, err
	}
	cutoff := time.Now().Add(-olderThan)
	for _, rel := range names {
		p := l.path(rel)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("bucket: clean temp %q in %s: %w", rel, l, classifyOS(err, false))
		}
		if !fi.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("bucket: clean temp %q in %s: %w", rel, l, classifyOS(err, false))
		}
		removed = append(removed, rel)
	}
	return removed, nil
}

// lock takes the in-process lock and then the flock on the lock file,
// waiting no longer than ctx allows. unlock releases both.
func (l *Local) lock(ctx context.Context) (unlock func(), err error) {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	lockFile := filepath.Join(l.dir, LockFileName)
	_, err = l.injected("open", lockFile, 0)
	var release func()
	if err == nil {
		release, err = flockFile(ctx, lockFile)
	}
	if err != nil {
		<-l.sem
		return nil, fmt.Errorf("lock %s: %w", LockFileName, err)
	}
	return func() { release(); <-l.sem }, nil
}

func (l *Local) check(ctx context.Context, op, name string) error {
	if err := l.validate(name); err != nil {
		return fmt.Errorf("bucket: %s in %s: %w", op, l, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bucket: %s %q in %s: %w", op, name, l, err)
	}
	return nil
}

// wrap names the operation, object and bucket, and adds the error class.
func (l *Local) wrap(op, name string, err error) error {
	return fmt.Errorf("bucket: %s %q in %s: %w", op, name, l, classifyOS(err, op != "put"))
}

// classifyOS adds the bucket error class an OS error belongs to. A missing
// file is ErrNotFound only when reading (notFound); for a write it is some
// other failure, such as a directory removed underneath.
func classifyOS(err error, notFound bool) error {
	var class error
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrPermission),
		errors.Is(err, ErrTransient), errors.Is(err, ErrInvalidName), errors.Is(err, ErrInvalidCondition):
		return err
	case notFound && errors.Is(err, fs.ErrNotExist):
		class = ErrNotFound
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		class = ErrPermission
	case errors.Is(err, syscall.EINTR), errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.ETIMEDOUT):
		class = ErrTransient
	default:
		return err
	}
	return fmt.Errorf("%w: %w", class, err)
}

// ctxReader stops a long read when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

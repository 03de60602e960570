package main

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// extractBin is the CLI, built once by TestMain the way `make image` builds it.
var extractBin string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if _, ok := elfMachine[runtime.GOARCH]; !ok || runtime.GOOS != "linux" {
			fmt.Printf("tools/image: the image is linux/amd64 or linux/arm64; this is %s/%s: skipped\n", runtime.GOOS, runtime.GOARCH)
			return 0
		}
		dir, err := os.MkdirTemp("", "image-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		extractBin = filepath.Join(dir, "extract")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", extractBin, "./cmd/extract")
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building cmd/extract: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}())
}

const testEpoch = 1764547200 // 2025-12-01T00:00:00Z

// build runs the tool as `make image` does and returns the digest it printed and the
// image read back from the tarball it wrote.
func build(t *testing.T, out string, env map[string]string, args ...string) (string, v1.Image) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"--binary", extractBin, "--arch", runtime.GOARCH, "--out", out}, args...)
	if code := run(args, &stdout, &stderr, func(k string) string { return env[k] }); code != 0 {
		t.Fatalf("image %v: exit %d\n%s", args, code, stderr.String())
	}
	digest, _, _ := strings.Cut(stdout.String(), " ")
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != digest {
		t.Fatalf("printed digest %s, tarball holds %s", digest, got)
	}
	return digest, img
}

// layerEntry is one tar header of the layer, as the test compares it.
type layerEntry struct {
	name     string
	mode     fs.FileMode
	uid, gid int
}

func (e layerEntry) String() string { return fmt.Sprintf("%s %v %d:%d", e.name, e.mode, e.uid, e.gid) }

// readLayer returns the single layer's headers in tar order and the files' bodies.
func readLayer(t *testing.T, img v1.Image) ([]layerEntry, map[string][]byte, []*tar.Header) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	if mt, _ := layers[0].MediaType(); mt != mediaLayer {
		t.Errorf("layer media type %s, want %s", mt, mediaLayer)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var entries []layerEntry
	var headers []*tar.Header
	bodies := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, layerEntry{h.Name, h.FileInfo().Mode(), h.Uid, h.Gid})
		headers = append(headers, h)
		if h.Typeflag == tar.TypeReg {
			if bodies[h.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	return entries, bodies, headers
}

// TestImage checks what a container runtime reads: the config (non-root user,
// entrypoint, CA bundle env, platform, labels) and the layer (binary 0755, CA
// bundle, passwd, /tmp 1777, nothing else, in name order, stamped with
// SOURCE_DATE_EPOCH), and that the OCI layout holds the same image.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"SOURCE_DATE_EPOCH": fmt.Sprint(testEpoch)}
	layoutDir := filepath.Join(dir, "layout")
	digest, img := build(t, filepath.Join(dir, "image.tar"), env,
		"--layout", layoutDir, "--revision", "0123456789abcdef", "--source", "https://example.invalid/akahu-parquet")

	if mt, _ := img.MediaType(); mt != mediaManifest {
		t.Errorf("manifest media type %s, want %s", mt, mediaManifest)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	created := time.Unix(testEpoch, 0).UTC()
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	if !cfg.Created.Time.Equal(created) {
		t.Errorf("created %v, want %v", cfg.Created.Time, created)
	}
	c := cfg.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root)", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/extract"}) || len(c.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/extract] and no cmd", c.Entrypoint, c.Cmd)
	}
	if !slices.Contains(c.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt") {
		t.Errorf("env %q lacks SSL_CERT_FILE", c.Env)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.revision": "0123456789abcdef",
		"org.opencontainers.image.source":   "https://example.invalid/akahu-parquet",
		"org.opencontainers.image.created":  "2025-12-01T00:00:00Z",
	} {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}

	entries, bodies, headers := readLayer(t, img)
	want := []layerEntry{
		{"etc/", fs.ModeDir | 0o755, 0, 0},
		{"etc/group", 0o644, 0, 0},
		{"etc/passwd", 0o644, 0, 0},
		{"etc/ssl/", fs.ModeDir | 0o755, 0, 0},
		{"etc/ssl/certs/", fs.ModeDir | 0o755, 0, 0},
		{"etc/ssl/certs/ca-certificates.crt", 0o644, 0, 0},
		{"extract", 0o755, 0, 0},
		{"home/", fs.ModeDir | 0o755, 0, 0},
		{"home/nonroot/", fs.ModeDir | 0o700, 65532, 65532},
		{"tmp/", fs.ModeDir | fs.ModeSticky | 0o777, 0, 0},
	}
	if !slices.Equal(entries, want) {
		t.Errorf("layer entries\n got %v\nwant %v", entries, want)
	}
	for _, h := range headers {
		if !h.ModTime.Equal(created) {
			t.Errorf("%s: mtime %v, want %v", h.Name, h.ModTime, created)
		}
	}
	bin, err := os.ReadFile(extractBin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bodies["extract"], bin) {
		t.Errorf("the layer's /extract (%d bytes) is not the built binary (%d bytes)", len(bodies["extract"]), len(bin))
	}
	ca, err := os.ReadFile(DefaultCABundle)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bodies["etc/ssl/certs/ca-certificates.crt"], ca) {
		t.Errorf("the layer's CA bundle differs from %s", DefaultCABundle)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(bodies["etc/ssl/certs/ca-certificates.crt"]) {
		t.Error("the layer's CA bundle holds no certificate Go can parse")
	}
	if !strings.Contains(string(bodies["etc/passwd"]), "\nnonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot 65532 entry:\n%s", bodies["etc/passwd"])
	}
	if !strings.Contains(string(bodies["etc/group"]), "\nnonroot:x:65532:") {
		t.Errorf("/etc/group has no nonroot 65532 entry:\n%s", bodies["etc/group"])
	}

	// `crane push bin/extract-image.tar REGISTRY/...`: the registry (one in memory,
	// on loopback) must hold the image under the digest the tool printed.
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	dst, err := name.NewTag(strings.TrimPrefix(reg.URL, "http://")+"/akahu/extract:dev", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dst, img); err != nil {
		t.Fatal(err)
	}
	if d, err := remote.Head(dst); err != nil || d.Digest.String() != digest {
		t.Errorf("pushed: %v (err %v), want digest %s", d, err, digest)
	}

	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != digest ||
		im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "akahu-parquet/extract:dev" {
		t.Errorf("OCI layout index %+v, want the one image %s named akahu-parquet/extract:dev", im.Manifests, digest)
	}
}

// TestImageDeterministic: the same binary and inputs give the same digest (and the
// same tarball, byte for byte), a rebuild into an existing layout replaces its
// image; the timestamp and labels are inputs.
func TestImageDeterministic(t *testing.T) {
	dir := t.TempDir()
	layoutDir := filepath.Join(dir, "layout")
	epoch := map[string]string{"SOURCE_DATE_EPOCH": fmt.Sprint(testEpoch)}
	first, _ := build(t, filepath.Join(dir, "first.tar"), epoch, "--revision", "abc", "--layout", layoutDir)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		same bool
	}{
		{"same inputs", epoch, []string{"--revision", "abc", "--layout", layoutDir}, true},
		{"another SOURCE_DATE_EPOCH", map[string]string{"SOURCE_DATE_EPOCH": fmt.Sprint(testEpoch + 1)}, []string{"--revision", "abc"}, false},
		{"no SOURCE_DATE_EPOCH", nil, []string{"--revision", "abc"}, false},
		{"another revision", epoch, []string{"--revision", "abd"}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, fmt.Sprintf("build%d.tar", i))
			got, _ := build(t, out, tt.env, tt.args...)
			if (got == first) != tt.same {
				t.Errorf("digest %s, first build %s: want same=%v", got, first, tt.same)
			}
			if tt.same {
				a, _ := os.ReadFile(filepath.Join(dir, "first.tar"))
				b, _ := os.ReadFile(out)
				if !bytes.Equal(a, b) {
					t.Error("same digest but the tarballs differ")
				}
			}
		})
	}
	idx, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	if im, err := idx.IndexManifest(); err != nil || len(im.Manifests) != 1 {
		t.Errorf("layout after two builds: %v manifests (err %v), want 1", im, err)
	}
}

// TestImageRuns unpacks the image's layer into a directory and runs /extract from
// it: `version`, and a small `demo` against the built-in fake Akahu, with the
// image's env. As root, it runs them as the container would: chrooted into the
// unpacked image (no libc, no loader, no /proc), as user 65532, in its home, writing
// to its /tmp; that proves the binary is static and the image's users and modes
// work. Otherwise it runs the unpacked binary on the host.
func TestImageRuns(t *testing.T) {
	dir := t.TempDir()
	_, img := build(t, filepath.Join(dir, "image.tar"), nil)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "rootfs")
	unpack(t, img, root)

	chroot := os.Geteuid() == 0
	exe, out, env := "/extract", "/tmp/demo", slices.Clone(cfg.Config.Env)
	env = append(env, "HOME=/home/nonroot")
	if !chroot {
		t.Log("not root: running the unpacked binary on the host, not chrooted into the image")
		exe, out = filepath.Join(root, "extract"), filepath.Join(root, "tmp", "demo")
		for i, e := range env {
			if after, ok := strings.CutPrefix(e, "SSL_CERT_FILE="); ok {
				env[i] = "SSL_CERT_FILE=" + filepath.Join(root, after)
			}
		}
	}
	for _, args := range [][]string{
		{"version"},
		{"demo", "--out", out, "--users", "1", "--accounts-per-user", "2", "--tx-per-month", "5"},
	} {
		cmd := exec.Command(exe, args...)
		cmd.Env = env
		if chroot {
			cmd.Dir = cfg.Config.WorkingDir
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Credential: &syscall.Credential{Uid: 65532, Gid: 65532}}
		}
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("/extract %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		if args[0] == "version" && !strings.HasPrefix(string(b), "extract ") {
			t.Errorf("/extract version printed %q", b)
		}
	}
	for _, p := range []string{"_dataset.json", "accounts", "transactions"} {
		fi, err := os.Stat(filepath.Join(root, "tmp", "demo", p))
		if err != nil {
			t.Errorf("the demo wrote no %s: %v", p, err)
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); chroot && ok && st.Uid != 65532 {
			t.Errorf("%s is owned by uid %d, want 65532", p, st.Uid)
		}
	}
}

// unpack writes the image's single layer under root with the tar's modes (and, as
// root, its owners).
func unpack(t *testing.T, img v1.Image, root string) {
	t.Helper()
	_, bodies, headers := readLayer(t, img)
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil { // the umask may have cut it
		t.Fatal(err)
	}
	for _, h := range headers {
		p := filepath.Join(root, filepath.FromSlash(h.Name))
		mode := h.FileInfo().Mode()
		var err error
		if h.Typeflag == tar.TypeDir {
			err = os.Mkdir(p, 0o700)
		} else {
			err = os.WriteFile(p, bodies[h.Name], 0o600)
		}
		if err == nil {
			err = os.Chmod(p, mode&(fs.ModePerm|fs.ModeSticky))
		}
		if err == nil && os.Geteuid() == 0 {
			err = os.Lchown(p, h.Uid, h.Gid)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestImageRefuses: what cannot give a working image fails with an error saying
// why, and writes nothing.
func TestImageRefuses(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "not-elf")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no CA bundle", nil, []string{"--binary", extractBin, "--arch", runtime.GOARCH, "--ca-bundle", filepath.Join(dir, "missing.crt")}, 1, "no CA bundle at " + filepath.Join(dir, "missing.crt")},
		{"CA bundle without certificates", nil, []string{"--binary", extractBin, "--arch", runtime.GOARCH, "--ca-bundle", notELF}, 1, "holds no PEM certificate"},
		{"not an ELF binary", nil, []string{"--binary", notELF}, 1, "is not a Linux ELF executable"},
		{"binary for another architecture", nil, []string{"--binary", extractBin, "--arch", other}, 1, "set GOARCH"},
		{"unknown architecture", nil, []string{"--binary", extractBin, "--arch", "s390x"}, 1, `architecture "s390x"`},
		{"no binary", nil, nil, 2, "--binary and --out or --layout are required"},
		{"bad SOURCE_DATE_EPOCH", map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, []string{"--binary", extractBin}, 2, `SOURCE_DATE_EPOCH "yesterday"`},
	}
	// A dynamically linked ELF for this machine, when the host has one.
	if fi, err := os.Stat("/bin/true"); err == nil && fi.Mode().IsRegular() {
		tests = append(tests, struct {
			name string
			env  map[string]string
			args []string
			code int
			want string
		}{"dynamically linked binary", nil, []string{"--binary", "/bin/true", "--arch", runtime.GOARCH}, 1, "CGO_ENABLED=0"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, "image.tar")
			var stdout, stderr bytes.Buffer
			code := run(append(slices.Clone(tt.args), "--out", out), &stdout, &stderr, func(k string) string { return tt.env[k] })
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %q: want exit %d and %q", code, stderr.String(), tt.code, tt.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s was written (stat: %v)", out, err)
			}
		})
	}
}

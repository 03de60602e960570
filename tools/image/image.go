package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths and ids inside the image. They match distroless static's nonroot variant,
// which the Dockerfile uses, so the deploy manifests' runAsUser 65532 fits both.
const (
	binaryPath = "/extract"
	caPath     = "/etc/ssl/certs/ca-certificates.crt"
	nonrootID  = 65532
	nonrootDir = "/home/nonroot"
)

// Media types: Docker's v2 schema 2, which every registry and runtime accepts. A
// docker-loadable tarball keeps no manifest, and whoever reads it back (crane push,
// tarball.ImageFromPath) makes one with these types: with OCI types the digest
// printed here would not be the digest the registry shows after a push.
const (
	mediaManifest = types.DockerManifestSchema2
	mediaConfig   = types.DockerConfigJSON
	mediaLayer    = types.DockerLayer
)

// DefaultCABundle is where Debian's ca-certificates package puts the bundle.
const DefaultCABundle = "/etc/ssl/certs/ca-certificates.crt"

// Options describe one image.
type Options struct {
	Binary   string    // the static extract binary, built for Arch
	CABundle string    // PEM bundle copied to /etc/ssl/certs/ca-certificates.crt
	Arch     string    // amd64 or arm64
	Created  time.Time // every timestamp in the image (config, history, tar entries)
	Source   string    // org.opencontainers.image.source label, if set
	Revision string    // org.opencontainers.image.revision label, if set
}

// elfMachine maps the supported architectures to the ELF machine a binary for
// them declares.
var elfMachine = map[string]elf.Machine{
	"amd64": elf.EM_X86_64,
	"arm64": elf.EM_AARCH64,
}

// Build assembles the image from scratch (no base image): one layer holding the
// binary, the CA bundle, /etc/passwd and /etc/group with the nonroot user, its home
// and an empty /tmp (mode 1777), and a config that runs /extract as 65532:65532.
// The same inputs give the same digest: every timestamp is opts.Created and the
// tar entries are in name order.
func Build(opts Options) (v1.Image, error) {
	machine, ok := elfMachine[opts.Arch]
	if !ok {
		return nil, fmt.Errorf("image: architecture %q: want amd64 or arm64", opts.Arch)
	}
	if err := checkStatic(opts.Binary, machine); err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("image: reading the binary: %w", err)
	}
	ca, err := os.ReadFile(opts.CABundle)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("image: no CA bundle at %s (on Debian: apt-get install ca-certificates, or pass --ca-bundle): %w", opts.CABundle, err)
	}
	if err != nil {
		return nil, fmt.Errorf("image: reading the CA bundle: %w", err)
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("image: CA bundle %s holds no PEM certificate", opts.CABundle)
	}

	layerTar, err := rootfs(bin, ca, opts.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(mediaLayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}

	created := v1.Time{Time: opts.Created}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, mediaManifest), mediaConfig)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: mediaLayer,
		History:   v1.History{Created: created, CreatedBy: "tools/image: extract, CA bundle, nonroot user, /tmp", Comment: "built without a container engine"},
	})
	if err != nil {
		return nil, fmt.Errorf("image: appending the layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = created
	cfg.OS = "linux"
	cfg.Architecture = opts.Arch
	cfg.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", nonrootID, nonrootID),
		Entrypoint: []string{binaryPath},
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"SSL_CERT_FILE=" + caPath,
		},
		WorkingDir: nonrootDir,
		Labels:     labels(opts),
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("image: setting the config: %w", err)
	}
	return img, nil
}

func labels(opts Options) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":   "akahu-parquet extract",
		"org.opencontainers.image.created": opts.Created.UTC().Format(time.RFC3339),
	}
	if opts.Source != "" {
		l["org.opencontainers.image.source"] = opts.Source
	}
	if opts.Revision != "" {
		l["org.opencontainers.image.revision"] = opts.Revision
	}
	return l
}

// checkStatic refuses a binary that is not an ELF executable for machine, or that
// is dynamically linked (a PT_INTERP program header or DT_NEEDED libraries): the
// image has no libc nor loader, so such a binary could not start in it.
func checkStatic(path string, machine elf.Machine) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("image: binary %s is not a Linux ELF executable (build it with GOOS=linux): %w", path, err)
	}
	defer f.Close()
	if f.Machine != machine {
		return fmt.Errorf("image: binary %s is for %v, the image for %v (set GOARCH)", path, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("image: binary %s is dynamically linked (build it with CGO_ENABLED=0)", path)
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		return fmt.Errorf("image: binary %s needs shared libraries %s (build it with CGO_ENABLED=0)", path, strings.Join(libs, ", "))
	}
	return nil
}

// entry is one file or directory of the layer.
type entry struct {
	name     string // without the leading slash
	mode     int64
	uid, gid int
	body     []byte // nil for a directory
}

const passwd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`

const group = `root:x:0:
nobody:x:65534:
nonroot:x:65532:
`

// rootfs returns the layer's uncompressed tar: every entry owned by root except the
// nonroot home, sorted by name, each stamped with mtime.
func rootfs(bin, ca []byte, mtime time.Time) ([]byte, error) {
	mtime = mtime.UTC().Truncate(time.Second)
	entries := []entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: strings.TrimPrefix(caPath, "/"), mode: 0o644, body: ca},
		{name: strings.TrimPrefix(binaryPath, "/"), mode: 0o755, body: bin},
		{name: "home/", mode: 0o755},
		{name: strings.TrimPrefix(nonrootDir, "/") + "/", mode: 0o700, uid: nonrootID, gid: nonrootID},
		{name: "tmp/", mode: 0o1777},
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: mtime,
			Format:  tar.FormatUSTAR,
		}
		if e.body == nil {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("image: layer entry %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("image: layer entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("image: closing the layer: %w", err)
	}
	return buf.Bytes(), nil
}

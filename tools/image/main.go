package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

func run(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts Options
	fs.StringVar(&opts.Binary, "binary", "", "the static extract binary (CGO_ENABLED=0, GOOS=linux, GOARCH=--arch)")
	fs.StringVar(&opts.CABundle, "ca-bundle", DefaultCABundle, "PEM CA bundle to put at "+caPath)
	fs.StringVar(&opts.Arch, "arch", "amd64", "image architecture: amd64 or arm64")
	fs.StringVar(&opts.Source, "source", "", "org.opencontainers.image.source label")
	fs.StringVar(&opts.Revision, "revision", "", "org.opencontainers.image.revision label (git rev-parse HEAD)")
	out := fs.String("out", "", "write a docker-loadable image tarball here")
	layoutDir := fs.String("layout", "", "also write (or update) an OCI image layout directory here")
	tag := fs.String("tag", "akahu-parquet/extract:dev", "the image's name in the tarball and the layout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if opts.Binary == "" || (*out == "" && *layoutDir == "") || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "image: --binary and --out or --layout are required, and nothing else")
		fs.Usage()
		return 2
	}
	created, err := sourceDateEpoch(getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	opts.Created = created
	ref, err := name.NewTag(*tag)
	if err != nil {
		fmt.Fprintf(stderr, "image: --tag %q: %v\n", *tag, err)
		return 2
	}

	img, err := Build(opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	digest, err := img.Digest()
	if err != nil {
		fmt.Fprintln(stderr, "image: digest:", err)
		return 1
	}
	if *out != "" {
		if err := writeTarball(*out, ref, img); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s %s (%s, linux/%s)\n", digest, *out, ref, opts.Arch)
	}
	if *layoutDir != "" {
		if err := writeLayout(*layoutDir, ref, img); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s %s (OCI layout, %s, linux/%s)\n", digest, *layoutDir, ref, opts.Arch)
	}
	return 0
}

// sourceDateEpoch parses SOURCE_DATE_EPOCH (seconds since 1970); unset means 0.
func sourceDateEpoch(s string) (time.Time, error) {
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("image: SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// writeTarball writes the image to path through a temporary file in the same
// directory, so a failed build leaves no half-written tarball behind.
func writeTarball(path string, ref name.Reference, img v1.Image) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".extract-image-*.tar")
	if err != nil {
		return fmt.Errorf("image: writing %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if err := tarball.Write(ref, img, f); err != nil {
		f.Close()
		return fmt.Errorf("image: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("image: writing %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("image: writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("image: writing %s: %w", path, err)
	}
	return nil
}

// writeLayout adds img to the OCI layout at dir under ref's name, replacing the
// image it held under that name; dir is created if it does not exist.
func writeLayout(dir string, ref name.Reference, img v1.Image) error {
	const refName = "org.opencontainers.image.ref.name"
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("image: creating the OCI layout %s: %w", dir, err)
		}
	}
	if err := p.ReplaceImage(img, match.Annotation(refName, ref.String()),
		layout.WithAnnotations(map[string]string{refName: ref.String()})); err != nil {
		return fmt.Errorf("image: writing the OCI layout %s: %w", dir, err)
	}
	return nil
}

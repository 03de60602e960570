// Command image builds the extract container image without a container engine and
// without pulling a base image (its own module, so the main module does not carry
// go-containerregistry). It assembles, from an empty image, one layer with the
// static binary at /extract, a CA bundle, /etc/passwd and /etc/group naming the
// nonroot user (65532), its home and an empty /tmp (mode 1777), and a config that
// runs /extract as 65532:65532 with SSL_CERT_FILE set: equivalent, for this binary,
// to what the repository's Dockerfile builds on distroless static (time zone data is
// embedded in the binary). It refuses a binary that is not a static Linux ELF for
// --arch: the image has no libc nor loader.
//
// It writes a tarball that `docker load` and `crane push` accept and, with --layout,
// an OCI image layout directory, and prints the image's digest. The manifest uses
// Docker's v2 schema 2 media types, which a docker tarball implies, so the digest a
// registry shows after `crane push` is the printed one. Every timestamp is
// SOURCE_DATE_EPOCH (or 1970-01-01) and the layer's entries are sorted, so the same
// binary and flags give the same digest.
//
//	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/extract-linux-amd64 ./cmd/extract
//	(cd tools/image && go build -o ../../bin/build-image .)
//	bin/build-image --binary bin/extract-linux-amd64 --out bin/extract-image.tar \
//	    [--arch amd64|arm64] [--tag akahu-parquet/extract:dev] [--layout DIR] \
//	    [--ca-bundle /etc/ssl/certs/ca-certificates.crt] [--source URL] [--revision SHA]
//
// `make image` does all of this (IMAGE_ARCH=arm64 cross-builds).
package main

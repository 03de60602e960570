// Command image builds the extract container image without a container engine and
// without pulling a base image. It assembles, from an empty image, one layer with
// the static binary at /extract, a CA bundle, /etc/passwd and /etc/group naming the
// nonroot user (65532), its home and an empty /tmp (mode 1777), and a config that
// runs /extract as 65532:65532 with SSL_CERT_FILE set: the same image the
// repository's Dockerfile builds on distroless static. It writes a tarball that
// `docker load` and `crane push` accept and, with --layout, an OCI image layout
// directory. Every timestamp is SOURCE_DATE_EPOCH (or 1970-01-01) and the layer's
// entries are sorted, so the same binary gives the same digest.
//
//	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/extract ./cmd/extract
//	cd tools/image && go run . --binary ../../bin/extract --out ../../bin/extract-image.tar \
//	    [--arch amd64|arm64] [--tag akahu-parquet/extract:dev] [--layout DIR] \
//	    [--ca-bundle /etc/ssl/certs/ca-certificates.crt] [--source URL] [--revision SHA]
//
// It prints the image's digest. `make image` does all of this.
package main

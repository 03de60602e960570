# The extract CLI as a container image: a static binary (CGO_ENABLED=0) on
# distroless static (CA certificates, no shell), run as the nonroot user. Time
# zone data is embedded in the binary (time/tzdata). The manifests under deploy/
# run this image; their args are checked against the CLI by
# cmd/extract/deploy_test.go.
#
# Without a container engine, `make image` builds an equivalent image (tools/image:
# the same binary, a CA bundle, the nonroot user 65532, /tmp; no base image pulled)
# into bin/extract-image.tar and prints its digest. Push it with
# `crane push bin/extract-image.tar REGION-docker.pkg.dev/PROJECT/akahu/extract:TAG`,
# or `docker load -i bin/extract-image.tar` where there is an engine.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/extract ./cmd/extract

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/extract /extract
USER nonroot:nonroot
ENTRYPOINT ["/extract"]

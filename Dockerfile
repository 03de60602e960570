# The extract CLI as a container image: a static binary (CGO_ENABLED=0) on
# distroless static (CA certificates, no shell), run as the nonroot user. Time
# zone data is embedded in the binary (time/tzdata). The manifests under deploy/
# run this image; their args are checked against the CLI by
# cmd/extract/deploy_test.go.
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

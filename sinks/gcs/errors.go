package gcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// This package defines no sentinel errors of its own: it reports the classes
// declared in sinks/bucket/errors.go. classify is the one place SDK errors
// are translated into them.

// classify adds the bucket error class that err belongs to, keeping err in
// the chain (so errors.As still finds a *googleapi.Error). Errors it cannot
// classify, including the caller's own context cancellation, are returned
// as they are.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var class error
	var gerr *googleapi.Error
	var nerr net.Error
	switch {
	case errors.Is(err, storage.ErrObjectNotExist), errors.Is(err, storage.ErrBucketNotExist):
		class = bucket.ErrNotFound
	case errors.As(err, &gerr):
		class = classForStatus(gerr.Code)
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		class = bucket.ErrTransient
	case errors.As(err, &nerr) && nerr.Timeout():
		class = bucket.ErrTransient
	case brokenConnection(err):
		class = bucket.ErrTransient
	}
	if class == nil {
		return err
	}
	return fmt.Errorf("%w: %w", class, err)
}

// brokenConnection reports whether err says the connection failed before an
// answer arrived: refused, reset, closed (EOF, "use of closed network
// connection") or cut short. The request may or may not have been applied.
func brokenConnection(err error) bool {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE):
		return true
	}
	// net/http's own unexported errors for a connection the server closed.
	msg := err.Error()
	return strings.Contains(msg, "server closed idle connection")
}

// isTransient reports whether err, an SDK or network error, may succeed if
// the request is sent again.
func isTransient(err error) bool { return bucket.IsTransient(classify(err)) }

// classForStatus maps an HTTP status from the JSON API to an error class.
func classForStatus(code int) error {
	switch {
	case code == http.StatusNotFound:
		return bucket.ErrNotFound
	case code == http.StatusPreconditionFailed:
		return bucket.ErrConflict
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		return bucket.ErrPermission
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return bucket.ErrTransient
	}
	return nil
}

// isPreconditionFailed reports whether err is GCS's HTTP 412.
func isPreconditionFailed(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed
}

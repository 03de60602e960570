package gcs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
		class = bucket.ErrTransient
	}
	if class == nil {
		return err
	}
	return fmt.Errorf("%w: %w", class, err)
}

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

package bucket

import (
	"context"
	"time"
)

// WithHook returns b with before called, with the object's name, ahead of every Put
// and Delete made through it, and on nothing else (reads, GetRange included, go
// straight to b). It is how a caller defines "every
// write point" once, by construction, instead of at each call site: crash tests kill
// the process there. A nil before returns b itself.
//
// The returned Bucket is a TempCleaner: it delegates to b when b is one, and removes
// nothing otherwise.
func WithHook(b Bucket, before func(name string)) Bucket {
	if before == nil {
		return b
	}
	return &hooked{Bucket: b, before: before}
}

type hooked struct {
	Bucket
	before func(string)
}

var _ TempCleaner = (*hooked)(nil)

func (h *hooked) Put(ctx context.Context, name string, data []byte, cond Condition) (Attrs, error) {
	h.before(name)
	return h.Bucket.Put(ctx, name, data, cond)
}

func (h *hooked) Delete(ctx context.Context, name string, cond Condition) error {
	h.before(name)
	return h.Bucket.Delete(ctx, name, cond)
}

// CleanTemp implements TempCleaner by delegating to the wrapped bucket, if it is one.
func (h *hooked) CleanTemp(ctx context.Context, olderThan time.Duration) ([]string, error) {
	if tc, ok := h.Bucket.(TempCleaner); ok {
		return tc.CleanTemp(ctx, olderThan)
	}
	return nil, nil
}

package pipeline

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
)

// SlowBucket answers the Gets and Puts (or with PutsOnly the Puts) of objects under
// Prefix ("": every object) after Delay, as a remote store would, and counts how
// many are under way at once. A test helper of this package's tests and its
// external tests.
type SlowBucket struct {
	bucket.Bucket
	Delay  time.Duration
	Prefix string
	// PutsOnly slows and counts the Puts alone.
	PutsOnly bool

	mu        sync.Mutex
	now, most int
}

// enter begins the operation on name, after Delay if it is under Prefix, and
// reports whether it was slowed (then leave ends it).
func (s *SlowBucket) enter(name string) bool {
	if !strings.HasPrefix(name, s.Prefix) {
		return false
	}
	s.mu.Lock()
	s.now++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	time.Sleep(s.Delay)
	return true
}

func (s *SlowBucket) leave() {
	s.mu.Lock()
	s.now--
	s.mu.Unlock()
}

func (s *SlowBucket) Get(ctx context.Context, name string) ([]byte, bucket.Attrs, error) {
	if !s.PutsOnly && s.enter(name) {
		defer s.leave()
	}
	return s.Bucket.Get(ctx, name)
}

func (s *SlowBucket) Put(ctx context.Context, name string, data []byte, cond bucket.Condition) (bucket.Attrs, error) {
	if s.enter(name) {
		defer s.leave()
	}
	return s.Bucket.Put(ctx, name, data, cond)
}

// Most returns the most slowed operations under way at once since the last Reset.
func (s *SlowBucket) Most() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.most
}

// Reset starts counting anew.
func (s *SlowBucket) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.most = 0
}

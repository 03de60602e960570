//go:build cgo && linux

package pipeline_test

import (
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory/mallocator"
)

// cMemory is Arrow's allocator of C memory (Config.Memory may be any allocator),
// counting what is not freed.
type cMemory struct{ *mallocator.Mallocator }

func (c cMemory) unfreed() int64 { return c.AllocatedBytes() }

// TestRunSequenceCMemory runs the run sequence (backfill, idempotent re-run,
// deletions, moves near and far, held partitions) with its Arrow buffers in C
// memory: the runs free every byte they allocate (checked by the harness at
// cleanup: a buffer left to the Go collector is never freed in C memory) and
// produce the same dataset.
func TestRunSequenceCMemory(t *testing.T) {
	testRunSequenceWith(t, newLocal(t), 0, cMemory{mallocator.NewMallocator()})
}

package pipeline_test

import (
	"sync/atomic"

	"github.com/apache/arrow/go/v17/arrow/memory"
)

// poisonAllocator is Go memory that is overwritten when it is freed: a record's
// buffers once its last reference is released, a builder's old buffer once it has
// grown. The harness runs the pipeline with it (Config.Memory), so that a value
// read from a record and kept after the record is released (an id as a map key, a
// tombstone's description) reads back poisoned, as it would with an allocator that
// reuses memory (Arrow's C allocators, a pool), instead of silently keeping the
// buffer alive as Go memory does. It counts the bytes not yet freed: a run must
// free all it allocates (an allocator of C memory gets nothing back otherwise).
type poisonAllocator struct {
	memory.GoAllocator
	held atomic.Int64 // bytes allocated and not yet freed
}

func (p *poisonAllocator) Allocate(size int) []byte {
	p.held.Add(int64(size))
	return p.GoAllocator.Allocate(size)
}

// poison is what freed bytes become.
const poison = 0xAA

func (p *poisonAllocator) Free(b []byte) {
	p.held.Add(-int64(len(b)))
	b = b[:cap(b)]
	for i := range b {
		b[i] = poison
	}
}

func (p *poisonAllocator) Reallocate(size int, b []byte) []byte {
	if size <= cap(b) {
		p.held.Add(int64(size - len(b)))
		return b[:size]
	}
	n := p.Allocate(size)
	copy(n, b)
	p.Free(b)
	return n
}

func (p *poisonAllocator) unfreed() int64 { return p.held.Load() }

// countingAllocator is an allocator that knows how many bytes it handed out that
// were not freed since.
type countingAllocator interface {
	memory.Allocator
	unfreed() int64
}

var _ countingAllocator = (*poisonAllocator)(nil)

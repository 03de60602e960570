package bucket

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Memory is a Bucket held in process memory, for tests. Generations come
// from one counter, so they are strictly increasing per name even across a
// delete and re-create. The zero value is not usable; call NewMemory.
type Memory struct {
	mu      sync.RWMutex
	objects map[string]memObject
	lastGen int64
}

type memObject struct {
	data  []byte
	attrs Attrs
}

var _ Bucket = (*Memory)(nil)

// NewMemory returns an empty in-memory bucket.
func NewMemory() *Memory { return &Memory{objects: make(map[string]memObject)} }

// String implements Bucket.
func (m *Memory) String() string { return fmt.Sprintf("mem://%p", m) }

// Get implements Bucket.
func (m *Memory) Get(ctx context.Context, name string) ([]byte, Attrs, error) {
	if err := m.check(ctx, "get", name); err != nil {
		return nil, Attrs{}, err
	}
	m.mu.RLock()
	o, ok := m.objects[name]
	m.mu.RUnlock()
	if !ok {
		return nil, Attrs{}, m.notFound("get", name)
	}
	return append([]byte(nil), o.data...), o.attrs, nil
}

// GetRange implements Bucket.
func (m *Memory) GetRange(ctx context.Context, name string, generation, offset, length int64) ([]byte, error) {
	if err := m.check(ctx, "get range", name); err != nil {
		return nil, err
	}
	if err := CheckRange(generation, offset, length); err != nil {
		return nil, fmt.Errorf("bucket: get range %q in %s: %w", name, m, err)
	}
	m.mu.RLock()
	o, ok := m.objects[name]
	m.mu.RUnlock()
	if !ok {
		return nil, m.notFound("get range", name)
	}
	if generation != 0 && generation != o.attrs.Generation {
		return nil, fmt.Errorf("bucket: get range %q in %s: %w", name, m, StaleGeneration(generation, o.attrs.Generation))
	}
	return sliceRange(o.data, offset, length), nil
}

// sliceRange copies data[offset:offset+length], cut short at the end of data.
func sliceRange(data []byte, offset, length int64) []byte {
	size := int64(len(data))
	if offset >= size {
		return []byte{}
	}
	end := offset + min(length, size-offset)
	return append([]byte(nil), data[offset:end]...)
}

// Attrs implements Bucket.
func (m *Memory) Attrs(ctx context.Context, name string) (Attrs, error) {
	if err := m.check(ctx, "attrs", name); err != nil {
		return Attrs{}, err
	}
	m.mu.RLock()
	o, ok := m.objects[name]
	m.mu.RUnlock()
	if !ok {
		return Attrs{}, m.notFound("attrs", name)
	}
	return o.attrs, nil
}

// Put implements Bucket.
func (m *Memory) Put(ctx context.Context, name string, data []byte, cond Condition) (Attrs, error) {
	if err := m.check(ctx, "put", name); err != nil {
		return Attrs{}, err
	}
	if err := cond.Validate(); err != nil {
		return Attrs{}, fmt.Errorf("bucket: put %q in %s: %w", name, m, err)
	}
	buf := append(make([]byte, 0, len(data)), data...)
	crc := CRC32C(buf)
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, exists := m.objects[name]
	if err := precondition(cond, exists, cur.attrs.Generation); err != nil {
		return Attrs{}, fmt.Errorf("bucket: put %q in %s: %w", name, m, err)
	}
	m.lastGen++
	a := Attrs{Name: name, Size: int64(len(buf)), Generation: m.lastGen, CRC32C: crc, Updated: time.Now()}
	m.objects[name] = memObject{data: buf, attrs: a}
	return a, nil
}

// Delete implements Bucket.
func (m *Memory) Delete(ctx context.Context, name string, cond Condition) error {
	if err := m.check(ctx, "delete", name); err != nil {
		return err
	}
	if err := validateDeleteCondition(cond); err != nil {
		return fmt.Errorf("bucket: delete %q in %s: %w", name, m, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, exists := m.objects[name]
	if !exists {
		return m.notFound("delete", name)
	}
	if err := precondition(cond, exists, cur.attrs.Generation); err != nil {
		return fmt.Errorf("bucket: delete %q in %s: %w", name, m, err)
	}
	delete(m.objects, name)
	return nil
}

// List implements Bucket.
func (m *Memory) List(ctx context.Context, prefix string) ([]Attrs, error) {
	return m.ListFrom(ctx, prefix, "")
}

// ListFrom implements Bucket.
func (m *Memory) ListFrom(ctx context.Context, prefix, start string) ([]Attrs, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bucket: list %q in %s: %w", prefix, m, err)
	}
	if err := ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("bucket: list in %s: %w", m, err)
	}
	m.mu.RLock()
	out := make([]Attrs, 0, len(m.objects))
	for name, o := range m.objects {
		if strings.HasPrefix(name, prefix) && name >= start {
			out = append(out, o.attrs)
		}
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (m *Memory) check(ctx context.Context, op, name string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("bucket: %s in %s: %w", op, m, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bucket: %s %q in %s: %w", op, name, m, err)
	}
	return nil
}

func (m *Memory) notFound(op, name string) error {
	return fmt.Errorf("bucket: %s %q in %s: %w", op, name, m, ErrNotFound)
}

// precondition checks cond against the current state of an object and
// returns a wrapped ErrConflict describing the mismatch.
func precondition(cond Condition, exists bool, gen int64) error {
	switch {
	case cond.DoesNotExist && exists:
		return fmt.Errorf("%w: %s but generation %d exists", ErrConflict, cond, gen)
	case cond.GenerationMatch != 0 && !exists:
		return fmt.Errorf("%w: %s but the object does not exist", ErrConflict, cond)
	case cond.GenerationMatch != 0 && gen != cond.GenerationMatch:
		return fmt.Errorf("%w: %s but current generation is %d", ErrConflict, cond, gen)
	}
	return nil
}

func validateDeleteCondition(cond Condition) error {
	if cond.DoesNotExist {
		return fmt.Errorf("%w: %s on delete", ErrInvalidCondition, cond)
	}
	return cond.Validate()
}

// PreconditionError returns the ErrConflict-wrapping error an implementation
// should report when cond does not hold for an object that exists (with
// generation gen) or not. It returns nil when cond holds. Exported for other
// implementations of Bucket (sinks/gcs) so that messages read alike.
func PreconditionError(cond Condition, exists bool, gen int64) error {
	return precondition(cond, exists, gen)
}

// ValidateDeleteCondition reports ErrInvalidCondition for a condition Delete
// cannot honour (DoesNotExist, or anything Condition.Validate rejects).
func ValidateDeleteCondition(cond Condition) error { return validateDeleteCondition(cond) }

package schema

import "bytes"

// xref names a known object (e.g. merchant, meta.conversion) that may hold
// unknown members. Its node in the extra tree is created on first use, so a
// known object without unknown members leaves no trace in extra.
type xref struct {
	parent *xref  // nil: the item itself
	quoted []byte // the object's name as JSON text, e.g. "merchant" with quotes
	id     int32  // node index; -1 until created, 0 for the root
}

func newRef(parent *xref, quoted []byte) xref {
	return xref{parent: parent, quoted: quoted, id: -1}
}

// Quoted names of the known objects, shared so that refs do not allocate.
var (
	qMerchant        = []byte(`"merchant"`)
	qCategory        = []byte(`"category"`)
	qGroups          = []byte(`"groups"`)
	qPersonalFinance = []byte(`"personal_finance"`)
	qMeta            = []byte(`"meta"`)
	qConversion      = []byte(`"conversion"`)
	qConnection      = []byte(`"connection"`)
	qBalance         = []byte(`"balance"`)
	qRefreshed       = []byte(`"refreshed"`)
)

// xnode is one member of extra: a raw value or a container of members.
type xnode struct {
	parent int32
	name   []byte // unquoted, the sort key
	quoted []byte // as written in the input
	value  []byte // raw JSON text; nil for a container
}

// extraTree collects the unknown members of one item and renders them as one
// JSON object with sorted keys at every level it builds; raw values are
// copied byte-for-byte.
type extraTree struct {
	nodes   []xnode
	scratch []int32
	out     []byte
	root    xref
}

func (t *extraTree) reset() {
	t.nodes = t.nodes[:0]
	t.root = xref{id: -1}
}

func (t *extraTree) ensure(ref *xref) int32 {
	if ref == nil {
		ref = &t.root
	}
	if ref.id >= 0 {
		return ref.id
	}
	if ref == &t.root {
		t.nodes = append(t.nodes, xnode{parent: -1})
		ref.id = int32(len(t.nodes) - 1)
		return ref.id
	}
	p := t.ensure(ref.parent)
	q := ref.quoted
	t.nodes = append(t.nodes, xnode{parent: p, name: q[1 : len(q)-1], quoted: q})
	ref.id = int32(len(t.nodes) - 1)
	return ref.id
}

func (t *extraTree) add(parent *xref, name, quoted, value []byte) {
	p := t.ensure(parent)
	t.nodes = append(t.nodes, xnode{parent: p, name: name, quoted: quoted, value: value})
}

// render returns the JSON text of extra, or nil when nothing was collected.
// The result is valid until the next render.
func (t *extraTree) render() []byte {
	if len(t.nodes) == 0 {
		return nil
	}
	t.out = t.out[:0]
	t.emit(t.root.id)
	return t.out
}

func (t *extraTree) emit(parent int32) {
	base := len(t.scratch)
	for i := range t.nodes {
		if t.nodes[i].parent == parent {
			t.scratch = append(t.scratch, int32(i))
		}
	}
	kids := t.scratch[base:]
	// insertion sort by name: few members, and stable for equal names
	for i := 1; i < len(kids); i++ {
		for j := i; j > 0 && bytes.Compare(t.nodes[kids[j-1]].name, t.nodes[kids[j]].name) > 0; j-- {
			kids[j-1], kids[j] = kids[j], kids[j-1]
		}
	}
	t.out = append(t.out, '{')
	for i, k := range kids {
		if i > 0 {
			t.out = append(t.out, ',')
		}
		n := &t.nodes[k]
		t.out = append(t.out, n.quoted...)
		t.out = append(t.out, ':')
		if n.value != nil {
			t.out = append(t.out, n.value...)
		} else {
			t.emit(k)
		}
	}
	t.out = append(t.out, '}')
	t.scratch = t.scratch[:base]
}

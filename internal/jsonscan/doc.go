// Package jsonscan reads JSON text held in memory, in place: a validating
// scanner that hands out sub-slices of its input and allocates nothing on
// the way (a map only for an object with many members, when duplicate names
// are checked).
//
// It accepts exactly what jsontext (github.com/go-json-experiment/json)
// accepts with the same options (RFC 8259 grammar, nesting up to MaxDepth;
// by default also RFC 7493: valid UTF-8, paired surrogate escapes, unique
// member names in every object), which the package's fuzz test checks. It
// replaces jsontext's Decoder where a body is read once from memory and
// speed matters: the Akahu client's response envelope (sources/akahu) and
// the schema package's item reader. Errors name the byte offset.
package jsonscan

package schema

import "errors"

// ErrInvalid is wrapped by every error about malformed input: an item that is
// not a JSON object, invalid JSON or UTF-8, a required field that is missing
// or null, a field of the wrong JSON type, an unparseable timestamp, or a
// money value with more fractional digits than its column's scale.
var ErrInvalid = errors.New("invalid Akahu object")

// ErrOverflow is wrapped when a money or rate value does not fit its column's
// precision (18 significant digits at the column's scale). Values are never
// rounded or clamped.
var ErrOverflow = errors.New("decimal value does not fit its column")

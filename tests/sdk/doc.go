// Package sdk runs the official Akahu JavaScript SDK (npm `akahu`, pinned in
// package-lock.json) against the fake Akahu server as an independent second client:
// if the fake and the SDK disagree, the fake is wrong. The Go test starts the fake,
// writes the expected data and runs check.mjs with node.
package sdk

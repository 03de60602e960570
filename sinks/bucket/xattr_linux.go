//go:build linux

package bucket

import (
	"encoding/binary"
	"syscall"
)

// crcXattr is the user extended attribute that caches a file's CRC32C,
// keyed by the generation and size it was computed for.
const crcXattr = "user.akahu-parquet.crc32c"

// writeCRCCache records crc for the file at path; failures (a file system
// without user xattrs) are ignored, since the cache is only an optimisation.
func writeCRCCache(path string, gen, size int64, crc uint32) {
	var v [20]byte
	binary.BigEndian.PutUint64(v[0:], uint64(gen))
	binary.BigEndian.PutUint64(v[8:], uint64(size))
	binary.BigEndian.PutUint32(v[16:], crc)
	_ = syscall.Setxattr(path, crcXattr, v[:], 0)
}

// readCRCCache returns the cached CRC32C of the file at path if it was
// recorded for exactly this generation and size.
func readCRCCache(path string, gen, size int64) (uint32, bool) {
	var v [20]byte
	n, err := syscall.Getxattr(path, crcXattr, v[:])
	if err != nil || n != len(v) {
		return 0, false
	}
	if int64(binary.BigEndian.Uint64(v[0:])) != gen || int64(binary.BigEndian.Uint64(v[8:])) != size {
		return 0, false
	}
	return binary.BigEndian.Uint32(v[16:]), true
}

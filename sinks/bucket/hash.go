package bucket

import (
	"hash"
	"hash/crc32"
)

func crc32cHash() hash.Hash32 { return crc32.New(castagnoli) }

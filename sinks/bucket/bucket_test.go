package bucket_test

import (
	"testing"

	"github.com/akahu-etl/akahu-parquet/sinks/bucket"
	"github.com/akahu-etl/akahu-parquet/sinks/bucket/buckettest"
)

func TestMemoryAcceptance(t *testing.T) {
	buckettest.Run(t, func(t *testing.T) bucket.Bucket { return bucket.NewMemory() })
}

func TestLocalAcceptance(t *testing.T) {
	buckettest.Run(t, func(t *testing.T) bucket.Bucket {
		l, err := bucket.NewLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

package shard

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/router"
)

// ErrChanged is wrapped when an expert shard's data no longer matches the
// digests ixctl split recorded in it.
var ErrChanged = errors.New("shard: expert data differs from the digests split recorded")

// verify hashes the experts an expert shard holds (once per file: the
// digests are cached beside it like a whole model's) and checks each
// against the whole-model digest split wrote into the shard's metadata,
// which the fingerprint covers. Without it a shard whose tensor data was
// replaced after the split would pass the fingerprint check. It returns
// how the hashes were obtained.
func verify(f *gguf.File, info *router.ModelInfo, sh *gguf.ShardInfo) (gguf.HashStats, error) {
	var total gguf.HashStats
	total.Cached = true
	for _, l := range info.MoELayers {
		ids := sh.Experts[l]
		if len(ids) == 0 {
			continue
		}
		names := make([]string, len(expertNames))
		for i, n := range expertNames {
			names[i] = "blk." + strconv.Itoa(l) + "." + n
		}
		sums, st, err := f.SliceHashes(names, len(ids))
		if err != nil {
			return total, err
		}
		total.Cached = total.Cached && st.Cached
		total.Bytes += st.Bytes
		total.Elapsed += st.Elapsed
		if st.CacheErr != nil {
			total.CacheErr = st.CacheErr
		}
		for k, name := range names {
			for i, e := range ids {
				got := sums[k][i*sha256.Size : (i+1)*sha256.Size]
				if !bytes.Equal(got, info.ExpertHash(name, e)) {
					return total, fmt.Errorf("%w: tensor %s expert %d (the file was changed after ixctl split)", ErrChanged, name, e)
				}
			}
		}
	}
	return total, nil
}

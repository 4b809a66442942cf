package router

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/model"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// expertHashes returns the per-expert digests of every routed expert
// tensor of f (layers with ffn_gate_exps): hashed from the data of a
// whole model, read from the metadata of a shard (ixctl split writes the
// whole model's digests into every shard; a node trusts its file for
// them).
func expertHashes(f *gguf.File, c *model.Config, sh *gguf.ShardInfo) (map[string][]byte, gguf.HashStats, error) {
	var names []string
	for l := range c.Layers {
		if _, ok := f.Tensor("blk." + strconv.Itoa(l) + "." + expertTensors[0]); !ok {
			continue
		}
		for _, n := range expertTensors {
			if _, ok := f.Tensor("blk." + strconv.Itoa(l) + "." + n); ok { // missing ones: expertShape says so
				names = append(names, "blk."+strconv.Itoa(l)+"."+n)
			}
		}
	}
	out := make(map[string][]byte, len(names))
	if sh != nil {
		for _, name := range names {
			a, err := f.Array(gguf.KeyShardHashPrefix + name)
			if err != nil {
				return nil, gguf.HashStats{}, fmt.Errorf("router: %w: the %s shard has no hashes of %s (split by an older ixctl? split the model again): %v",
					gguf.ErrShard, sh.Role, name, err)
			}
			b, ok := a.Values.([]uint8)
			if !ok || len(b) != c.Experts*sha256.Size {
				return nil, gguf.HashStats{}, fmt.Errorf("router: %w: %s%s is not %d bytes", gguf.ErrShard, gguf.KeyShardHashPrefix, name, c.Experts*sha256.Size)
			}
			out[name] = b
		}
		return out, gguf.HashStats{Cached: true}, nil
	}
	for _, name := range names {
		t, _ := f.Tensor(name)
		if len(t.Dims) != 3 || t.Dims[2] != int64(c.Experts) {
			return nil, gguf.HashStats{}, fmt.Errorf("router: tensor %s has shape %s, want %d experts", name, t.Shape(), c.Experts)
		}
	}
	sums, stats, err := f.SliceHashes(names, c.Experts)
	if err != nil {
		return nil, stats, fmt.Errorf("router: %w", err)
	}
	for i, name := range names {
		out[name] = sums[i]
	}
	return out, stats, nil
}

// tensorHash is a tensor's digest: the SHA-256 of its experts' digests.
func tensorHash(experts []byte) []byte {
	s := sha256.Sum256(experts)
	return s[:]
}

// TensorHashes returns the wire form of the expert tensors' digests, in
// layer order.
func (m *ModelInfo) TensorHashes() []*ixv1.TensorHash {
	var out []*ixv1.TensorHash
	for _, l := range m.MoELayers {
		for _, n := range expertTensors {
			name := "blk." + strconv.Itoa(l) + "." + n
			if h, ok := m.ExpertHashes[name]; ok {
				out = append(out, &ixv1.TensorHash{Name: name, Sha256: tensorHash(h)})
			}
		}
	}
	return out
}

// ExpertHash returns the digest of expert e's slice of the routed expert
// tensor name, nil if unknown.
func (m *ModelInfo) ExpertHash(name string, e int) []byte {
	h := m.ExpertHashes[name]
	if (e+1)*sha256.Size > len(h) || e < 0 {
		return nil
	}
	return h[e*sha256.Size : (e+1)*sha256.Size]
}

// checkModel compares the model a node reports in Status with m's. On a
// fingerprint mismatch it asks the node for its tensor digests to name
// the first tensor that differs.
func (m *ModelInfo) checkModel(ctx context.Context, c ixv1.ExpertServiceClient, got *ixv1.ModelInfo) error {
	fp := got.GetFingerprint()
	if fp == m.Fingerprint {
		return nil
	}
	err := fmt.Errorf("serves a different model (fingerprint %s, %s), the coordinator runs %s", fp, got.GetArchitecture(), m.Fingerprint)
	st, serr := c.Status(ctx, &ixv1.StatusRequest{TensorHashes: true})
	if serr != nil {
		return err
	}
	theirs := map[string][]byte{}
	for _, t := range st.GetModel().GetTensorHashes() {
		theirs[t.GetName()] = t.GetSha256()
	}
	for _, t := range m.TensorHashes() {
		h, ok := theirs[t.GetName()]
		if !ok {
			continue
		}
		if !bytes.Equal(h, t.GetSha256()) {
			return fmt.Errorf("serves a different model: tensor %s differs (fingerprint %s, the coordinator runs %s)", t.GetName(), fp, m.Fingerprint)
		}
	}
	return err
}

// LogHashing logs how m's weight digests were obtained: hashed now (with
// the bytes, the time and why they could not be cached beside the
// model), read from the cache, or trusted from a shard's metadata.
func LogHashing(log *slog.Logger, path string, m *ModelInfo) {
	st := m.Hashing
	switch {
	case st.Cached:
		log.Debug("model weight digests from cache or shard metadata", "model", path, "fingerprint", m.Fingerprint)
	case st.CacheErr != nil:
		log.Warn("model weights hashed; the digests could not be cached beside the model and will be computed again at the next start",
			"model", path, "bytes", st.Bytes, "elapsed", st.Elapsed.Round(time.Millisecond), "err", st.CacheErr)
	default:
		log.Info("model weights hashed and cached", "model", path, "cache", path+gguf.HashSuffix,
			"bytes", st.Bytes, "elapsed", st.Elapsed.Round(time.Millisecond))
	}
}

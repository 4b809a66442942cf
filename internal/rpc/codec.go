package rpc

import (
	"sync"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the proto codec this one wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

// codec is gRPC's proto codec with a fast path for ForwardResponse, the
// one large message of the hot path (a decode step's sums are ~0.2 MB per
// node): the server marshals it from a pooled buffer it then reuses, and
// the client decodes its sums into the reply's existing buffer straight
// from gRPC's receive buffers. Both save an allocation of the message
// size per call (and its zeroing and garbage), and the client a copy.
// Every other message, and a ForwardResponse with fields this build does
// not know, goes through the proto codec.
type codec struct{ proto encoding.CodecV2 }

var forwardCodec = codec{proto: encoding.GetCodecV2("proto")}

func (c codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	resp, ok := v.(*ixv1.ForwardResponse)
	if !ok || len(resp.ProtoReflect().GetUnknown()) > 0 {
		return c.proto.Marshal(v)
	}
	sums := resp.Sums
	n := 0
	if len(sums) > 0 {
		n = protowire.SizeTag(1) + protowire.SizeBytes(len(sums))
	}
	pool := marshalPool
	buf := pool.Get(n)
	b := (*buf)[:0]
	if len(sums) > 0 {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, sums)
	}
	*buf = b
	resp.Sums = nil
	PutSums(sums)
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	resp, ok := v.(*ixv1.ForwardResponse)
	if !ok || !decodeSums(data, resp) {
		return c.proto.Unmarshal(data, v)
	}
	return nil
}

// decodeSums decodes a ForwardResponse that holds only field 1 into
// resp.Sums, reusing its capacity; false means use the proto codec.
func decodeSums(data mem.BufferSlice, resp *ixv1.ForwardResponse) bool {
	total := data.Len()
	if total == 0 {
		resp.Sums = resp.Sums[:0]
		return true
	}
	if len(data) == 0 {
		return false
	}
	head := data[0].ReadOnlyData()
	num, typ, n := protowire.ConsumeTag(head)
	if n < 0 || num != 1 || typ != protowire.BytesType {
		return false
	}
	size, m := protowire.ConsumeVarint(head[n:])
	if m < 0 || uint64(total) != uint64(n+m)+size {
		return false // more fields, or a header split across buffers
	}
	if cap(resp.Sums) < int(size) {
		resp.Sums = make([]byte, size)
	}
	out := resp.Sums[:0]
	skip := n + m
	for _, buf := range data {
		d := buf.ReadOnlyData()
		if skip >= len(d) {
			skip -= len(d)
			continue
		}
		out = append(out, d[skip:]...)
		skip = 0
	}
	resp.Sums = out
	return true
}

// marshalPool holds marshalled ForwardResponses until gRPC has written
// them. Unlike gRPC's default pool it does not zero buffers: Marshal
// overwrites every byte.
var marshalPool = &bytePool{}

// bytePool is a mem.BufferPool over sync.Pool.
type bytePool struct{ p sync.Pool }

func (b *bytePool) Get(n int) *[]byte {
	if p, ok := b.p.Get().(*[]byte); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	buf := make([]byte, n)
	return &buf
}

func (b *bytePool) Put(p *[]byte) { b.p.Put(p) }

// sumsPool holds the servers' response buffers between calls.
var sumsPool sync.Pool // *[]byte

// GetSums returns a buffer of n bytes for a ForwardResponse's sums; the
// server's codec returns it to the pool once the response is marshalled.
func GetSums(n int) []byte {
	if p, ok := sumsPool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:n]
	}
	return make([]byte, n)
}

// PutSums gives a sums buffer back.
func PutSums(b []byte) {
	if cap(b) > 0 {
		sumsPool.Put(&b)
	}
}

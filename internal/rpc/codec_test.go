package rpc

import (
	"bytes"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
)

func TestCodecForwardResponse(t *testing.T) {
	sums := make([]byte, 70000)
	for i := range sums {
		sums[i] = byte(i * 7)
	}
	want := append([]byte(nil), sums...)
	data, err := forwardCodec.Marshal(&ixv1.ForwardResponse{Sums: sums})
	if err != nil {
		t.Fatal(err)
	}
	wire := data.Materialize()
	var ref ixv1.ForwardResponse
	if err := proto.Unmarshal(wire, &ref); err != nil || !bytes.Equal(ref.Sums, want) {
		t.Fatalf("the fast marshal is not the proto encoding: %v", err)
	}
	// split across receive buffers at every awkward place
	for _, cut := range []int{1, 2, 3, 4, 100, len(wire) - 1} {
		split := mem.BufferSlice{mem.SliceBuffer(wire[:cut]), mem.SliceBuffer(wire[cut:])}
		resp := &ixv1.ForwardResponse{Sums: make([]byte, 5, 80000)}
		if err := forwardCodec.Unmarshal(split, resp); err != nil || !bytes.Equal(resp.Sums, want) {
			t.Fatalf("cut %d: %v, %d bytes", cut, err, len(resp.Sums))
		}
	}
	// unknown fields go through the proto codec and are kept
	extra := protowire.AppendTag(append([]byte(nil), wire...), 9, protowire.VarintType)
	extra = protowire.AppendVarint(extra, 5)
	resp := &ixv1.ForwardResponse{}
	if err := forwardCodec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(extra)}, resp); err != nil ||
		!bytes.Equal(resp.Sums, want) || len(resp.ProtoReflect().GetUnknown()) == 0 {
		t.Fatalf("with an unknown field: %v", err)
	}
	// empty response
	empty, _ := forwardCodec.Marshal(&ixv1.ForwardResponse{})
	if err := forwardCodec.Unmarshal(empty, resp); err != nil || len(resp.Sums) != 0 {
		t.Fatalf("empty: %v %d", err, len(resp.Sums))
	}
	// other messages pass through
	st, err := forwardCodec.Marshal(&ixv1.StatusResponse{NodeId: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var got ixv1.StatusResponse
	if err := forwardCodec.Unmarshal(st, &got); err != nil || got.NodeId != "x" {
		t.Fatalf("status: %v", err)
	}
}

func TestFloatsRoundTrip(t *testing.T) {
	x := []float32{1, -2.5, 3e-38, 7}
	b := make([]byte, 17)
	for _, off := range []int{0, 1} { // aligned and not
		PutFloats(b[off:], x)
		y := make([]float32, 4)
		Floats(y, b[off:])
		AddFloats(y, b[off:])
		for i := range x {
			if y[i] != 2*x[i] {
				t.Fatalf("offset %d: %v", off, y)
			}
		}
	}
}

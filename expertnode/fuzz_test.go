package expertnode_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/inference-x/inference-x/expertnode"
	"github.com/inference-x/inference-x/internal/experttest"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
	"github.com/inference-x/inference-x/router"
)

// FuzzForward feeds arbitrary bytes to the service as ForwardRequests:
// it must never panic, and every rejection must be a typed status, not
// INTERNAL.
func FuzzForward(f *testing.F) {
	good, _ := proto.Marshal(request())
	f.Add(good)
	bad := request()
	bad.Rows[0].GroupSizes = []uint32{1, 5}
	b, _ := proto.Marshal(bad)
	f.Add(b)
	f.Add([]byte{})
	cfg := expertnode.DefaultServiceConfig()
	cfg.Model, cfg.Executor = info(), experttest.New(layers, nExp, embd)
	var s router.Set
	s.AddRange(0, 7)
	cfg.Holdings = router.Uniform(s, []int{1, 2})
	svc, err := expertnode.NewService(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req ixv1.ForwardRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		resp, err := svc.Forward(context.Background(), &req)
		if err != nil {
			if c := expertnode.Status(err).Code(); c == codes.Internal || c == codes.Unknown {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		groups := 0
		for _, r := range req.Rows {
			groups += max(len(r.GroupSizes), 1)
		}
		if len(resp.Sums) != groups*embd*4 {
			t.Fatalf("%d bytes of sums for %d groups", len(resp.Sums), groups)
		}
	})
}

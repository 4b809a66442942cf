package expertnode

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/inference-x/inference-x/experts"
	"github.com/inference-x/inference-x/gguf"
	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/router"
)

// Domain errors of the expert service. Handlers return them wrapped with
// details; errorTable turns them into gRPC codes at the edge.
var (
	// ErrUnknownLayer: the layer is out of range or has no routed experts.
	ErrUnknownLayer = errors.New("expertnode: not a MoE layer")
	// ErrNotHeld: the node does not hold the expert (now).
	ErrNotHeld = errors.New("expertnode: expert not held")
	// ErrNotAvailable: the node cannot hold the expert at all (it is not
	// in the shard file the node serves).
	ErrNotAvailable = errors.New("expertnode: expert not in this node's file")
	// ErrNoRoom: loading the experts would exceed the node's capacity.
	ErrNoRoom = errors.New("expertnode: over capacity")
	// ErrBadRequest: a malformed call (activation type or length, counts).
	ErrBadRequest = errors.New("expertnode: bad request")
	// ErrModelMismatch: the caller runs a different model.
	ErrModelMismatch = errors.New("expertnode: model fingerprint differs")
	// ErrShuttingDown: the node is draining.
	ErrShuttingDown = errors.New("expertnode: shutting down")
)

// errorTable is the one map from the service's errors to gRPC codes.
var errorTable = []rpc.ErrorCode{
	{Err: ErrUnknownLayer, Code: codes.InvalidArgument},
	{Err: experts.ErrUnknownExpert, Code: codes.InvalidArgument},
	{Err: ErrBadRequest, Code: codes.InvalidArgument},
	{Err: router.ErrSpec, Code: codes.InvalidArgument},
	{Err: ErrNotHeld, Code: codes.FailedPrecondition},
	{Err: ErrNotAvailable, Code: codes.FailedPrecondition},
	{Err: ErrNoRoom, Code: codes.ResourceExhausted},
	{Err: ErrTooLarge, Code: codes.ResourceExhausted},
	{Err: ErrModelMismatch, Code: codes.FailedPrecondition},
	{Err: ErrShuttingDown, Code: codes.Unavailable},
	// The node's model file was truncated or rewritten under it: it cannot
	// serve until restarted; callers fail over to replicas.
	{Err: gguf.ErrFileChanged, Code: codes.Unavailable},
}

// Status maps an error of the service to its gRPC status.
func Status(err error) *status.Status { return rpc.StatusOf(err, errorTable) }

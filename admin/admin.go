// Package admin is the coordinator's operator API (ix.v1.AdminService,
// what ixctl talks to): cluster status from membership and the placement
// manager, dry-run plans, and the changes an operator asks for (apply a
// replication factor, drain and undrain a node, move an expert). It owns no state:
// placement lives in router.Manager, membership in membership.Cluster.
package admin

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/inference-x/inference-x/internal/rpc"
	"github.com/inference-x/inference-x/membership"
	ixv1 "github.com/inference-x/inference-x/proto/ix/v1"
	"github.com/inference-x/inference-x/router"
)

// errorTable maps the domain errors to gRPC codes at the edge.
var errorTable = []rpc.ErrorCode{
	{Err: router.ErrUnknownNode, Code: codes.NotFound},
	{Err: router.ErrPlan, Code: codes.InvalidArgument},
	{Err: router.ErrCapacity, Code: codes.ResourceExhausted},
}

// Status maps an error of the service to its gRPC status.
func Status(err error) *status.Status { return rpc.StatusOf(err, errorTable) }

// Bounds of the admin API's server: its requests are a few node names,
// so 4 MiB is plenty, and an operator runs a few calls at a time.
const (
	MaxRequestBytes = 4 << 20
	MaxPendingCalls = 16
)

// ServerConfig returns the config of the admin API's gRPC server: sec's
// TLS and token (checked from the headers, before a request is read), the
// service's error table and the bounds above.
func ServerConfig(sec rpc.Security, log *slog.Logger) rpc.ServerConfig {
	cfg := rpc.DefaultServerConfig()
	cfg.Security, cfg.Status, cfg.Logger = sec, Status, log
	cfg.MaxRecvBytes, cfg.MaxPendingCalls = MaxRequestBytes, MaxPendingCalls
	return cfg
}

// Service implements ixv1.AdminServiceServer. It is safe for concurrent
// use; changes are serialised by the manager.
type Service struct {
	ixv1.UnimplementedAdminServiceServer
	mgr *router.Manager
	// members lists gossip members (for departed nodes); nil: none.
	members func() []membership.Member
}

// NewService serves mgr; members, when set, adds departed expert nodes
// to the status as dead.
func NewService(mgr *router.Manager, members func() []membership.Member) *Service {
	return &Service{mgr: mgr, members: members}
}

// ClusterStatus implements the RPC.
func (s *Service) ClusterStatus(context.Context, *ixv1.ClusterStatusRequest) (*ixv1.ClusterStatusResponse, error) {
	return s.status(), nil
}

func (s *Service) status() *ixv1.ClusterStatusResponse {
	st := s.mgr.Status()
	out := &ixv1.ClusterStatusResponse{Replicas: uint32(st.Replicas), UnderReplicated: uint32(st.UnderReplicated), Epoch: st.Epoch}
	for _, n := range st.Nodes {
		state := ixv1.NodeState_NODE_STATE_ALIVE
		if n.Drained || n.Draining {
			state = ixv1.NodeState_NODE_STATE_DRAINING
		}
		out.Nodes = append(out.Nodes, &ixv1.ClusterNode{Id: n.ID, Address: n.Addr, State: state, Experts: uint32(n.Experts),
			Bytes: uint64(n.Bytes), Load: n.Load, Capacity: uint64(n.Capacity), Host: n.Host})
	}
	if s.members != nil {
		for _, m := range s.members() {
			if m.Meta.Role != membership.RoleExpert || m.State == membership.StateAlive {
				continue
			}
			if slices.ContainsFunc(out.Nodes, func(n *ixv1.ClusterNode) bool { return n.Id == m.Name }) {
				continue
			}
			out.Nodes = append(out.Nodes, &ixv1.ClusterNode{Id: m.Name, Address: m.Meta.RPC, State: ixv1.NodeState_NODE_STATE_DEAD,
				Capacity: uint64(m.Meta.Capacity), Host: m.Meta.Host})
		}
		slices.SortFunc(out.Nodes, func(a, b *ixv1.ClusterNode) int {
			if a.Id < b.Id {
				return -1
			}
			if a.Id > b.Id {
				return 1
			}
			return 0
		})
	}
	return out
}

// PlanPlacement implements the RPC.
func (s *Service) PlanPlacement(_ context.Context, req *ixv1.PlanPlacementRequest) (*ixv1.PlanPlacementResponse, error) {
	var ids []string
	if len(req.GetNodes()) > 0 {
		ids = req.GetNodes()
	}
	n := len(ids)
	if ids == nil {
		n = s.liveNodes()
	}
	if err := checkReplicas(int(req.GetReplicas()), n); err != nil {
		return nil, err
	}
	p, mv, err := s.mgr.DryRun(ids, int(req.GetReplicas()))
	if err != nil {
		return nil, err
	}
	out := &ixv1.PlanPlacementResponse{Replicas: uint32(p.Replicas), UnderReplicated: uint32(p.UnderReplicated),
		ExpertsMoved: uint32(mv.ExpertsMoved), BytesMoved: uint64(mv.BytesMoved),
		ExpertsReleased: uint32(mv.ExpertsReleased), BytesReleased: uint64(mv.BytesReleased)}
	if err := p.Shortfall(); err != nil {
		out.Shortfall = err.Error()
	}
	moves := map[string]router.NodeMove{}
	for _, nm := range mv.Nodes {
		moves[nm.ID] = nm
	}
	for _, sh := range p.Nodes {
		nm := moves[sh.ID]
		out.Nodes = append(out.Nodes, &ixv1.NodeMovement{Id: sh.ID, LoadExperts: uint32(nm.LoadCount), LoadBytes: uint64(nm.LoadBytes),
			ReleaseExperts: uint32(nm.ReleaseCount), ReleaseBytes: uint64(nm.ReleaseBytes), Holdings: sh.Holdings.ToProto(),
			Experts: uint32(sh.Experts), Bytes: uint64(sh.Bytes)})
	}
	// Nodes that drop out of the plan release everything.
	for _, nm := range mv.Nodes {
		if p.Shard(nm.ID) == nil {
			out.Nodes = append(out.Nodes, &ixv1.NodeMovement{Id: nm.ID, ReleaseExperts: uint32(nm.ReleaseCount), ReleaseBytes: uint64(nm.ReleaseBytes)})
		}
	}
	return out, nil
}

// ApplyPlacement implements the RPC.
func (s *Service) ApplyPlacement(ctx context.Context, req *ixv1.ApplyPlacementRequest) (*ixv1.ApplyPlacementResponse, error) {
	r := int(req.GetReplicas())
	if err := checkReplicas(r, s.liveNodes()); err != nil {
		return nil, err
	}
	if r == 0 {
		r = s.mgr.Status().Replicas
	}
	if err := s.mgr.SetReplicas(ctx, r); err != nil {
		return nil, err
	}
	return &ixv1.ApplyPlacementResponse{Status: s.status()}, nil
}

// liveNodes counts the expert nodes placement may use: alive and not
// drained or draining.
func (s *Service) liveNodes() int {
	n := 0
	for _, nd := range s.mgr.Status().Nodes {
		if !nd.Drained && !nd.Draining {
			n++
		}
	}
	return n
}

// checkReplicas refuses an asked-for replication factor r (0: keep the
// current) above the nodes it would be spread over: a node holds an
// expert once, so the plan could only leave every expert under-replicated.
func checkReplicas(r, nodes int) error {
	if r > nodes {
		return fmt.Errorf("%w: --replicas %d is more than the %d expert nodes to place on (live, not draining; a node holds each expert once): give at most %d or add nodes",
			router.ErrPlan, r, nodes, nodes)
	}
	return nil
}

// DrainNode implements the RPC.
func (s *Service) DrainNode(ctx context.Context, req *ixv1.DrainNodeRequest) (*ixv1.DrainNodeResponse, error) {
	if err := s.mgr.Drain(ctx, req.GetNode()); err != nil {
		return nil, err
	}
	return &ixv1.DrainNodeResponse{Status: s.status()}, nil
}

// UndrainNode implements the RPC.
func (s *Service) UndrainNode(ctx context.Context, req *ixv1.UndrainNodeRequest) (*ixv1.UndrainNodeResponse, error) {
	if err := s.mgr.Undrain(ctx, req.GetNode()); err != nil {
		return nil, err
	}
	return &ixv1.UndrainNodeResponse{Status: s.status()}, nil
}

// MoveExpert implements the RPC.
func (s *Service) MoveExpert(ctx context.Context, req *ixv1.MoveExpertRequest) (*ixv1.MoveExpertResponse, error) {
	if err := s.mgr.Move(ctx, int(req.GetLayer()), int(req.GetExpert()), req.GetNode()); err != nil {
		return nil, fmt.Errorf("move %d:%d to %s: %w", req.GetLayer(), req.GetExpert(), req.GetNode(), err)
	}
	return &ixv1.MoveExpertResponse{Status: s.status()}, nil
}

// Package membership is the cluster's gossip layer: a hashicorp/memberlist
// wrapper that tells every process which coordinators and expert nodes are
// alive, where their gRPC endpoints are and a few numbers about each
// (capacity, holdings version, load, draining).
//
// It owns the gossip socket, the small per-node metadata (Meta, kept under
// memberlist's 512-byte limit), joining by a seed list (DNS names resolve
// to every address they hold, so a Kubernetes headless service works as a
// seed), rejoining when alone, encryption with a shared key, and a graceful
// leave. It does not own placement or the expert map: the coordinator
// turns membership into a plan (router.NewPlan) and fetches each node's
// holdings over gRPC.
package membership

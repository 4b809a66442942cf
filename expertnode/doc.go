// Package expertnode is the server side of the expert service
// (proto/ix/v1 ExpertService): it validates Forward calls against the
// model and the experts the node holds, runs them on an in-process
// Executor (experts.Local, later the pager) and serves them on the
// project's gRPC server with health reporting and graceful shutdown.
// Probes serve its readiness (Server.Ready) in plaintext on a separate
// port for the kubelet; Config.Metrics gets its ix_node_* metrics.
//
// It does not choose which experts a node holds (that is the placement:
// router.PlacementFile, later membership) nor open model files (cmd/expertnode
// does).
package expertnode

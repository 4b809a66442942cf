// Package k8s holds the Kubernetes deployment of Inference-X: a kustomize
// base (base/) and overlays (overlays/dev, overlays/prod). The package has
// no code; its test builds every overlay with kustomize's krusty (what
// `kubectl apply -k` sends), decodes each object strictly into the
// k8s.io/api types and checks that selectors, ports, volumes and the
// command-line flags agree with each other and with the binaries, and
// that the overlays schedule and isolate: QoS as Kubernetes computes it
// (Guaranteed in prod), CPU that fits the prod box after the kubelet's
// reservation, locked-down security contexts (CAP_SYS_NICE only with
// --numa-node), the image at the VERSION tag, NetworkPolicies that admit
// only the coordinator to the nodes' gRPC and only members to gossip,
// probes on the plaintext health ports, scrape annotations, budgets that
// allow a drain, and no patch by list index. README.md has the choices,
// the arithmetic and the kube-score results (make kube-score).
package k8s

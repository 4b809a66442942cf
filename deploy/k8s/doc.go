// Package k8s holds the Kubernetes deployment of Inference-X: a kustomize
// base (base/) and overlays (overlays/dev, overlays/prod). The package has
// no code; its test builds every overlay with kustomize's krusty (what
// `kubectl apply -k` sends), decodes each object strictly into the
// k8s.io/api types and checks that selectors, ports, volumes and the
// command-line flags agree with each other and with the binaries.
package k8s

// Package container tests the Inference-X container image (the
// Containerfile at the repository root) as a cluster of real containers:
// a coordinator and three expert nodes on a container network of their
// own, with mutual TLS, the gossip key and the cluster token read from
// files mounted the way Kubernetes mounts secrets, each container running
// as the image's non-root user on a read-only root filesystem with every
// capability dropped.
//
// The package has only a test. `make container-test` builds the image
// (`make image`) and runs it with -image; without -image, or without a
// working podman, the test skips with a message, so `go test
// ./...` passes over it quickly:
//
//	make container-test
//	go test -v -run TestContainerCluster ./deploy/container -args -image inference-x:v0.16.0
package container

// Command k8sbuild prints what `kustomize build DIR` prints, with the
// kustomize library the project's tests use (no kustomize or kubectl
// binary needed): `go run ./internal/k8sbuild deploy/k8s/overlays/prod`.
// make kube-score pipes it to kube-score.
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: k8sbuild DIR (a kustomization directory)")
		os.Exit(2)
	}
	if err := build(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "k8sbuild: %v\n", err)
		os.Exit(1)
	}
}

func build(dir string) error {
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return err
	}
	b, err := rm.AsYaml()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(b)
	return err
}

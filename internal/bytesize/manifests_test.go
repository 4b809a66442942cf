package bytesize

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
)

var (
	// memory: 32Gi, storage: 100Gi, {memory: 2Gi}
	quantityRE = regexp.MustCompile(`\b(?:memory|storage|ephemeral-storage):\s*"?([0-9][0-9.]*[A-Za-z]*)"?`)
	// - --capacity\n - 28GiB, --expert-mem=12Gi, "--capacity", "340GiB"
	sizeFlagRE = regexp.MustCompile(`--(capacity|expert-mem|max-body|max-message-bytes)["']?(?:\s*[=\s]\s*-?\s*|\s*,\s*)["']?([0-9][0-9.]*[A-Za-z]*)`)
)

// TestRepoSpellings parses every size the manifests and READMEs write:
// each resource quantity must mean to Parse what it means to Kubernetes,
// and each size flag's value must parse.
func TestRepoSpellings(t *testing.T) {
	var files []string
	filepath.WalkDir("../../deploy", func(p string, d os.DirEntry, err error) error {
		if err == nil && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".md")) {
			files = append(files, p)
		}
		return nil
	})
	files = append(files, "../../README.md", "../../experts/README.md")
	quantities, flags := 0, 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range quantityRE.FindAllStringSubmatch(string(b), -1) {
			q, err := resource.ParseQuantity(m[1])
			if err != nil {
				continue // not a quantity (a comment's prose)
			}
			quantities++
			if got, err := Parse(m[1]); err != nil || got != q.Value() {
				t.Errorf("%s: %s: Parse = %d, %v; Kubernetes says %d", f, m[0], got, err, q.Value())
			}
		}
		for _, m := range sizeFlagRE.FindAllStringSubmatch(string(b), -1) {
			flags++
			if n, err := Parse(m[2]); err != nil || n <= 0 && m[2] != "0" {
				t.Errorf("%s: --%s %s: %d, %v", f, m[1], m[2], n, err)
			}
		}
	}
	if quantities == 0 || flags == 0 {
		t.Errorf("found %d quantities and %d size flags in %d files: the patterns no longer match", quantities, flags, len(files))
	}
	t.Logf("%d quantities, %d size flag values in %d files", quantities, flags, len(files))
}

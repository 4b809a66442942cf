package buildinfo

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestGetFillsEveryField(t *testing.T) {
	in := Get()
	if in.Version == "" || in.Revision == "" || in.GoVersion != runtime.Version() {
		t.Fatalf("Get() = %+v", in)
	}
	if s := in.String(); !strings.Contains(s, in.Version) || !strings.Contains(s, runtime.Version()) {
		t.Errorf("String() = %q", s)
	}
}

func TestLinkerFlagsWin(t *testing.T) {
	defer func(v, r string) { version, revision = v, r }(version, revision)
	version, revision = "v9.9.9", "abcdef"
	in := Get()
	if in.Version != "v9.9.9" || in.Revision != "abcdef" {
		t.Fatalf("Get() = %+v, want the stamped version and revision", in)
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collector())
	in := Get()
	want := `# HELP ix_build_info The running build: version, VCS revision and Go version (value 1).
# TYPE ix_build_info gauge
ix_build_info{goversion="` + in.GoVersion + `",revision="` + in.Revision + `",version="` + in.Version + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ix_build_info"); err != nil {
		t.Fatal(err)
	}
}

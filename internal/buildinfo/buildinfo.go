// Package buildinfo says which build of Inference-X is running: the
// version (from the VERSION file, stamped by the Makefile with -ldflags
// -X), the VCS revision and the Go version. Every binary prints it for
// --version and exports it on /metrics as ix_build_info.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by the Makefile: -ldflags "-X .../buildinfo.version=v0.1.0
// -X .../buildinfo.revision=abc123". Empty in a plain `go build`, where
// the module's build info fills what it knows.
var (
	version  string
	revision string
)

// Info describes the running binary.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Get returns the build information of the running binary. Version is
// "devel" and Revision "unknown" when neither the linker flags nor the
// module's build info say.
func Get() Info {
	in := Info{Version: version, Revision: revision, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if in.Revision == "" {
					in.Revision = s.Value
				}
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	if in.Revision == "" {
		in.Revision = "unknown"
	}
	return in
}

// String is the one line --version prints after the program's name:
// "v0.1.0 (revision abc123, go1.26.8, linux/amd64)".
func (in Info) String() string {
	rev := in.Revision
	if in.Modified {
		rev += "-dirty"
	}
	return fmt.Sprintf("%s (revision %s, %s, %s)", in.Version, rev, in.GoVersion, in.Platform)
}

// Collector returns the ix_build_info gauge (always 1) with the version,
// revision and Go version as labels, for every binary's /metrics.
func Collector() prometheus.Collector {
	in := Get()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "ix", Name: "build_info",
		Help: "The running build: version, VCS revision and Go version (value 1).",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(in.Version, in.Revision, in.GoVersion).Set(1)
	return g
}

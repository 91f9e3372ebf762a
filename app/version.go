package app

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/mailgate/mailgate/adapters/metrics"
)

// The linker stamps these (`make build`, the Dockerfile):
//
//	-X github.com/mailgate/mailgate/app.version=v1.2.3
//	-X github.com/mailgate/mailgate/app.commit=0123abc
//	-X github.com/mailgate/mailgate/app.buildDate=2026-01-02T03:04:05Z
//
// -X can only set package-level string variables; nothing writes them at run
// time, and the rest of the program reads them through currentBuild.
var (
	version   string
	commit    string //nolint:gochecknoglobals // stamped by the linker (-X), never written at run time
	buildDate string //nolint:gochecknoglobals // stamped by the linker (-X), never written at run time
)

// buildInfo names the build of the running binary.
type buildInfo struct {
	Version   string
	Commit    string
	Date      string
	GoVersion string
}

// currentBuild is what the linker stamped, completed from the module and VCS
// information the Go toolchain embeds (`go build` in a checkout, `go install
// module@version`).
func currentBuild() buildInfo {
	embedded, _ := debug.ReadBuildInfo() // nil when the binary carries none
	return resolveBuild(buildInfo{Version: version, Commit: commit, Date: buildDate}, embedded)
}

// resolveBuild prefers each stamped field and falls back to embedded (which
// may be nil), then to "dev" or "unknown".
func resolveBuild(stamped buildInfo, embedded *debug.BuildInfo) buildInfo {
	b := stamped
	b.GoVersion = runtime.Version()
	if embedded != nil {
		settings := map[string]string{}
		for _, s := range embedded.Settings {
			settings[s.Key] = s.Value
		}
		if b.Version == "" && embedded.Main.Version != "" && embedded.Main.Version != "(devel)" {
			b.Version = embedded.Main.Version
		}
		if b.Commit == "" && settings["vcs.revision"] != "" {
			b.Commit = settings["vcs.revision"]
			if settings["vcs.modified"] == "true" {
				b.Commit += "-dirty"
			}
		}
		if b.Date == "" {
			b.Date = settings["vcs.time"]
		}
		if embedded.GoVersion != "" {
			b.GoVersion = embedded.GoVersion
		}
	}
	b.Version = or(b.Version, "dev")
	b.Commit = or(b.Commit, "unknown")
	b.Date = or(b.Date, "unknown")
	return b
}

// write prints the build as `mailgate version` and `mailgate --version` show it.
func (b buildInfo) write(w io.Writer) error {
	_, err := fmt.Fprintf(w, "mailgate %s\n  commit: %s\n  built:  %s\n  go:     %s %s/%s\n",
		b.Version, b.Commit, b.Date, b.GoVersion, runtime.GOOS, runtime.GOARCH)
	return err
}

// forMetrics is the build as mailgate_build_info labels it.
func (b buildInfo) forMetrics() metrics.BuildInfo {
	return metrics.BuildInfo{Version: b.Version, Commit: b.Commit, GoVersion: b.GoVersion}
}

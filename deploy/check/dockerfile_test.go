package check

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	digest "github.com/opencontainers/go-digest"
)

var (
	repoRoot       = filepath.Join("..", "..")
	dockerfilePath = filepath.Join(repoRoot, "Dockerfile")
)

// offlineImages answers BuildKit's base-image look-ups with a minimal Linux
// image config of this machine's architecture, so linting never touches a
// registry.
type offlineImages struct{}

func (offlineImages) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := fmt.Sprintf(`{"architecture":%q,"os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}`, runtime.GOARCH)
	return ref, digest.FromString(ref), []byte(cfg), nil
}

// buildkitLint runs BuildKit's Dockerfile checks (those of
// `docker build --check`) and returns one line per finding.
func buildkitLint(t *testing.T, dt []byte) []string {
	t.Helper()
	sm := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", dt)
	sm.Definition = &llb.Definition{}
	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{SourceMap: sm, MetaResolver: offlineImages{}})
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	var out []string
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		out = append(out, fmt.Sprintf("line %d: %s: %s", line, w.RuleName, w.Detail))
	}
	if res.Error != nil {
		out = append(out, "error: "+res.Error.Message)
	}
	return out
}

func TestDockerfileBuildKitChecks(t *testing.T) {
	if problems := buildkitLint(t, readFile(t, dockerfilePath)); len(problems) > 0 {
		t.Errorf("BuildKit's checks on %s:\n%s", dockerfilePath, strings.Join(problems, "\n"))
	}
	// The checks are live: a Dockerfile with known faults is caught.
	bad := "from golang:1.26 as build\nENV GOFLAGS -mod=mod\nWORKDIR src\nCMD go run .\n"
	problems := strings.Join(buildkitLint(t, []byte(bad)), "\n")
	for _, rule := range []string{"ConsistentInstructionCasing", "LegacyKeyValueFormat", "WorkdirRelativePath", "JSONArgsRecommended"} {
		if !strings.Contains(problems, rule) {
			t.Errorf("BuildKit's %s did not fire on a faulty Dockerfile:\n%s", rule, problems)
		}
	}
}

// TestDockerfileContract: the image the operator contract and the chart
// expect.
func TestDockerfileContract(t *testing.T) {
	dt := readFile(t, dockerfilePath)
	res, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		t.Fatal(err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 {
		t.Fatalf("%d stages, want a builder and the final image", len(stages))
	}
	goVersion := ""
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Key == "GO_VERSION" && kv.Value != nil {
				goVersion = *kv.Value
			}
		}
	}
	build, final := stages[0], stages[1]
	if strings.ReplaceAll(build.BaseName, "${GO_VERSION}", goVersion) != "golang:1.26" {
		t.Errorf("builder FROM %s (GO_VERSION=%s), want golang:1.26", build.BaseName, goVersion)
	}
	if final.BaseName != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final FROM %s, want gcr.io/distroless/static-debian12:nonroot", final.BaseName)
	}

	var runs []string
	downloadBeforeSource := false
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.RunCommand:
			runs = append(runs, strings.Join(c.CmdLine, " "))
		case *instructions.CopyCommand:
			if slices.Contains(c.SourcePaths, ".") && len(runs) > 0 && strings.Contains(runs[len(runs)-1], "go mod download") {
				downloadBeforeSource = true
			}
		}
	}
	if !downloadBeforeSource {
		t.Error("want `go mod download` in its own layer, after copying go.mod and go.sum and before the sources")
	}
	buildCmd := strings.Join(runs, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "go build -trimpath", `-ldflags="-s -w `, "-o /out/mailgate ./app/cmd/mailgate",
		// What `mailgate version` reports, from the build arguments.
		"-X github.com/mailgate/mailgate/app.version=${VERSION}", "-X github.com/mailgate/mailgate/app.commit=${REVISION}",
		"-X github.com/mailgate/mailgate/app.buildDate=${BUILD_DATE}"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("builder does not run %q:\n%s", want, buildCmd)
		}
	}

	var user, entrypoint, cmd string
	var exposed []string
	labels := map[string]string{}
	copied := false
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if !c.PrependShell {
				entrypoint = strings.Join(c.CmdLine, " ")
			}
		case *instructions.CmdCommand:
			if !c.PrependShell {
				cmd = strings.Join(c.CmdLine, " ")
			}
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				labels[kv.Key] = strings.Trim(kv.Value, `"`)
			}
		case *instructions.CopyCommand:
			copied = c.From == "build" && slices.Equal(c.SourcePaths, []string{"/out/mailgate"}) && c.DestPath == "/mailgate"
		case *instructions.RunCommand:
			t.Errorf("RUN in the final stage (distroless has no shell): %v", c.CmdLine)
		}
	}
	if !copied {
		t.Error("the final stage must copy /out/mailgate from the build stage to /mailgate")
	}
	if user != "65532:65532" {
		t.Errorf("USER %q, want 65532:65532", user)
	}
	if entrypoint != "/mailgate" || cmd != "serve" {
		t.Errorf(`ENTRYPOINT %q CMD %q, want exec form ["/mailgate"] ["serve"]`, entrypoint, cmd)
	}
	if !slices.Equal(exposed, []string{"8080", "9090"}) {
		t.Errorf("EXPOSE %v, want 8080 9090", exposed)
	}
	for _, k := range []string{"title", "description", "source", "licenses", "version"} {
		if labels["org.opencontainers.image."+k] == "" {
			t.Errorf("no org.opencontainers.image.%s label", k)
		}
	}
	if labels["org.opencontainers.image.version"] != "${VERSION}" {
		t.Errorf("org.opencontainers.image.version = %q, want it from ARG VERSION", labels["org.opencontainers.image.version"])
	}
}

// TestDockerContextHasBuildInputs: .dockerignore keeps out what the build
// doesn't need but none of the files `go build ./app/cmd/mailgate` reads.
func TestDockerContextHasBuildInputs(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	ignored := func(rel string) bool {
		m, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	list := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}{{end}}`,
		"./app/cmd/mailgate")
	list.Dir = repoRoot
	list.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off")
	var stderr bytes.Buffer
	list.Stderr = &stderr // "go: downloading ..." on a fresh module cache
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list in the main module: %v\n%s", err, stderr.String())
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		rel, err := filepath.Rel(root, line)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, rel)
	}
	if len(files) < 10 {
		t.Fatalf("go list found only %v", files)
	}
	for _, rel := range files {
		if ignored(rel) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", rel)
		}
	}
	for _, rel := range []string{".git/HEAD", "charts/mailgate/Chart.yaml", "deploy/check/go.mod", ".mailgate/jwt-secret", "bin/mailgate"} {
		if !ignored(rel) {
			t.Errorf(".dockerignore lets %s into the build context", rel)
		}
	}
}

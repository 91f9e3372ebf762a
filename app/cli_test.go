package app

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/jwtauth"
	"github.com/mailgate/mailgate/db/dbtest"
)

// runCLI runs the CLI as the binary would, with env as its whole environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), Env{
		Args:   args,
		Getenv: func(k string) string { return env[k] },
		Stdout: &out,
		Stderr: &errOut,
	})
	return code, out.String(), errOut.String()
}

func TestOperatorCLI(t *testing.T) {
	t.Parallel()
	env := map[string]string{"MAILGATE_DATABASE_URL": dbtest.IsolatedURL(t), "MAILGATE_JWT_SECRET": testSecret}

	for range 2 {
		if code, out, errOut := runCLI(t, env, "migrate"); code != 0 || !strings.Contains(out, `"applied"`) {
			t.Fatalf("migrate: exit %d, %s %s", code, out, errOut)
		}
	}

	code, out, errOut := runCLI(t, env, "tenant", "create", "--name", "Acme", "--sender-domain", "Acme.Example", "--sender-domain", "mail.acme.example")
	if code != 0 {
		t.Fatalf("tenant create: exit %d: %s", code, errOut)
	}
	var tenant struct {
		SubscriptionID uuid.UUID `json:"subscription_id"`
		SenderDomains  []string  `json:"sender_domains"`
	}
	if err := json.Unmarshal([]byte(out), &tenant); err != nil || tenant.SubscriptionID == uuid.Nil {
		t.Fatalf("tenant create printed %q: %v", out, err)
	}
	if strings.Join(tenant.SenderDomains, ",") != "acme.example,mail.acme.example" {
		t.Fatalf("sender domains %v", tenant.SenderDomains)
	}

	code, out, errOut = runCLI(t, env, "account", "create", "--subscription", tenant.SubscriptionID.String(), "--email", "ops@acme.example", "--display-name", "Ops")
	if code != 0 {
		t.Fatalf("account create: exit %d: %s", code, errOut)
	}
	var account struct {
		AccountID uuid.UUID `json:"account_id"`
		Email     string    `json:"email"`
	}
	if err := json.Unmarshal([]byte(out), &account); err != nil || account.AccountID == uuid.Nil || account.Email != "ops@acme.example" {
		t.Fatalf("account create printed %q: %v", out, err)
	}

	code, _, errOut = runCLI(t, env, "account", "create", "--subscription", tenant.SubscriptionID.String(), "--email", "ceo@bank.example")
	if code == 0 || !strings.Contains(errOut, "verified domain") {
		t.Fatalf("an account off the tenant's domains must be refused: exit %d %s", code, errOut)
	}

	code, out, errOut = runCLI(t, env, "token", "issue", "--subscription", tenant.SubscriptionID.String(), "--ttl", "1h", "--admin")
	if code != 0 {
		t.Fatalf("token issue: exit %d: %s", code, errOut)
	}
	auth, _ := jwtauth.NewHS256([]byte(testSecret), jwtauth.Options{})
	claims, err := auth.Verify(context.Background(), strings.TrimSpace(out))
	if err != nil || claims.SubscriptionID != tenant.SubscriptionID || !claims.Admin {
		t.Fatalf("issued token does not verify as an admin token of the tenant: %+v %v", claims, err)
	}

	code, out, errOut = runCLI(t, env, "tenant", "dkim", "--subscription", tenant.SubscriptionID.String(), "--domain", "ACME.example", "--selector", "mg1", "--algorithm", "ed25519-sha256")
	if code != 0 || !strings.Contains(out, `"dns_name": "mg1._domainkey.acme.example"`) || !strings.Contains(out, "v=DKIM1; k=ed25519; p=") {
		t.Fatalf("tenant dkim: exit %d %s %s", code, out, errOut)
	}
	if code, _, _ := runCLI(t, env, "tenant", "dkim", "--subscription", tenant.SubscriptionID.String(), "--domain", "other.example", "--selector", "mg1"); code == 0 {
		t.Fatal("a DKIM key for an unverified domain must be refused")
	}

	inboundEnv := maps.Clone(env)
	inboundEnv["MAILGATE_BOUNCE_DOMAIN"], inboundEnv["MAILGATE_REPLY_DOMAIN"] = "bounces.gw.example", "reply.gw.example"
	inboundEnv["MAILGATE_VERP_KEYS"], inboundEnv["MAILGATE_INBOUND_HOSTNAME"] = testSecret, "mx.gw.example"
	code, out, errOut = runCLI(t, inboundEnv, "tenant", "inbound", "--subscription", tenant.SubscriptionID.String(), "--return-path-domain", "RP.acme.example", "--replies", "on")
	if code != 0 || !strings.Contains(out, `"return_path_domain": "rp.acme.example"`) || !strings.Contains(out, `"reply_routing": true`) ||
		!strings.Contains(out, `"dns_name": "rp.acme.example"`) || !strings.Contains(out, `"dns_value": "bounces.gw.example."`) ||
		!strings.Contains(out, `"dns_value": "10 mx.gw.example."`) {
		t.Fatalf("tenant inbound: exit %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, inboundEnv, "tenant", "inbound", "--subscription", tenant.SubscriptionID.String(), "--return-path-domain", "not a domain"); code != exitBadUsage {
		t.Fatalf("a bad return-path domain: exit %d %s", code, errOut)
	}

}

// TestSeparateRoles accepts a message on an api-only process and delivers it
// from a worker-only process, as the Helm chart deploys them.
func TestSeparateRoles(t *testing.T) {
	t.Parallel()
	g := startGatewayRole(t, RoleAPI)
	if g.app.river == nil || g.relay.Sessions() != 0 {
		t.Fatal("api role must not deliver")
	}
	res := g.postJSON(t, g.seedSample(true))
	var v messageView
	res.decode(t, &v)
	if v.State != "queued" {
		t.Fatalf("accepted message is %s", v.State)
	}

	cfg := g.app.cfg
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.AdminAddr = "127.0.0.1:0"
	worker := g.startProcess(t, cfg, RoleWorker)
	if worker.HTTPAddr() != "" {
		t.Fatal("worker role must not serve the API")
	}
	g.waitForState(t, v.ID, "sent")
	g.relay.WaitForMessages(t, 1, 0)
}

// tripwire stands in for PostgreSQL: a loopback listener that counts and
// drops every connection, so a test sees whether anything tried the database.
// Dropping answers at once, so a command that does connect fails fast (and
// `dev` sees a server that misbehaves, not a missing one it would start).
type tripwire struct {
	url  string
	hits atomic.Int64
}

func newTripwire(t *testing.T) *tripwire {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tw := &tripwire{url: fmt.Sprintf("postgres://postgres@%s/mailgate?sslmode=disable&connect_timeout=5", ln.Addr())}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			// Counted before the client can see the drop, so once a command
			// has failed to connect its hit is already here.
			tw.hits.Add(1)
			_ = conn.Close()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return tw
}

// tripwireEnv points every database setting at tw and gives each command
// what it needs to do real work, so only help can keep it from acting.
func tripwireEnv(tw *tripwire) map[string]string {
	return map[string]string{
		"MAILGATE_DATABASE_URL":           tw.url,
		"MAILGATE_MIGRATION_DATABASE_URL": tw.url,
		"MAILGATE_JWT_SECRET":             testSecret,
		"MAILGATE_HTTP_ADDR":              "127.0.0.1:0",
		"MAILGATE_ADMIN_ADDR":             "127.0.0.1:0",
	}
}

// TestHelpOnlyPrintsUsage asks every command for help, bare and after flags
// that would otherwise make it run: each prints its usage on stdout, exits 0,
// and neither reaches the database nor creates dev's state directory.
func TestHelpOnlyPrintsUsage(t *testing.T) {
	t.Parallel()
	tw := newTripwire(t)
	env := tripwireEnv(tw)
	tenant := uuid.NewString()
	runnable := map[string][]string{
		"serve":          {"--role", "api"},
		"migrate":        nil,
		"dev":            nil,
		"tenant create":  {"--name", "Acme", "--sender-domain", "acme.example"},
		"tenant dkim":    {"--subscription", tenant, "--domain", "acme.example", "--selector", "mg1"},
		"tenant inbound": {"--subscription", tenant, "--return-path-domain", "rp.acme.example", "--replies", "on"},
		"account create": {"--subscription", tenant, "--email", "ops@acme.example"},
		"token issue":    {"--subscription", tenant, "--admin"},
		"version":        nil,
	}
	_, err := os.Stat(devStateDir)
	devStateExisted := !errors.Is(err, fs.ErrNotExist)
	if !devStateExisted {
		// Should dev ever run here after all, leave no state behind.
		t.Cleanup(func() { _ = os.RemoveAll(devStateDir) })
	}

	type helpCase struct {
		args      []string
		wantStart string
	}
	var cases []helpCase
	for _, c := range commands() {
		flags, ok := runnable[c.name]
		if !ok {
			t.Errorf("command %q is not covered: give it runnable flags in this test", c.name)
			continue
		}
		words := strings.Fields(c.name)
		want := "Usage: mailgate " + c.name
		cases = append(cases,
			helpCase{append(slices.Clone(words), "-h"), want},
			helpCase{append(slices.Clone(words), "--help"), want},
			helpCase{append(slices.Concat(words, flags), "-h"), want},
			helpCase{append(slices.Concat(words, flags), "--help"), want},
			helpCase{append([]string{"help"}, words...), want},
		)
	}
	for _, group := range []string{"tenant", "account", "token"} {
		want := "Usage: mailgate " + group + " COMMAND"
		cases = append(cases, helpCase{[]string{group, "-h"}, want}, helpCase{[]string{group, "--help"}, want}, helpCase{[]string{"help", group}, want})
	}
	for _, top := range []string{"-h", "--help", "help"} {
		cases = append(cases, helpCase{[]string{top}, "mailgate — a multi-tenant mail gateway\n\nUsage: mailgate COMMAND"})
	}

	for _, tc := range cases {
		code, out, errOut := runCLI(t, env, tc.args...)
		if code != exitOK || errOut != "" || !strings.HasPrefix(out, tc.wantStart) {
			t.Errorf("mailgate %s: exit %d, stdout %q, stderr %q; want exit 0 and stdout starting %q",
				strings.Join(tc.args, " "), code, out, errOut, tc.wantStart)
		}
		if strings.Contains(out, "eyJ") || strings.Contains(out, "{") {
			t.Errorf("mailgate %s printed more than usage: %s", strings.Join(tc.args, " "), out)
		}
	}
	if n := tw.hits.Load(); n != 0 {
		t.Errorf("help connected to the database %d times", n)
	}
	if _, err := os.Stat(devStateDir); !devStateExisted && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("help created %s (%v)", devStateDir, err)
	}

	// The same flags without help do act, so the checks above can fail.
	if code, _, _ := runCLI(t, env, "migrate"); code != exitFailed || tw.hits.Load() == 0 {
		t.Errorf("migrate without help: exit %d after %d connections; want it to try the database and fail", code, tw.hits.Load())
	}
	if code, out, _ := runCLI(t, env, slices.Concat([]string{"token", "issue"}, runnable["token issue"])...); code != exitOK || !strings.HasPrefix(out, "eyJ") {
		t.Errorf("token issue without help: exit %d, %q; want a token", code, out)
	}
}

// TestUsageErrors: a command line that can't run exits 2 with a one-line
// error on stderr, then the usage of the command it meant, and touches nothing.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tw := newTripwire(t)
	env := tripwireEnv(tw)
	tenant := uuid.NewString()
	const top = "mailgate — a multi-tenant mail gateway\n\nUsage: mailgate COMMAND"
	cases := []struct {
		args      []string
		wantError string
		wantUsage string
	}{
		{nil, "mailgate: no command given", top},
		{[]string{"bogus"}, `mailgate: unknown command "bogus"`, top},
		{[]string{"--bogus"}, `mailgate: unknown command "--bogus"`, top},
		{[]string{"--version", "now"}, "mailgate: --version takes no arguments", top},
		{[]string{"help", "bogus"}, `mailgate: unknown command "bogus"`, top},
		{[]string{"serve", "--bogus"}, "mailgate serve: flag provided but not defined: -bogus", "Usage: mailgate serve"},
		{[]string{"serve", "--role", "everything"}, `mailgate serve: --role must be all, api, worker or inbound, got "everything"`, "Usage: mailgate serve"},
		{[]string{"serve", "--role"}, "mailgate serve: flag needs an argument: -role", "Usage: mailgate serve"},
		{[]string{"migrate", "--dry-run"}, "mailgate migrate: flag provided but not defined: -dry-run", "Usage: mailgate migrate"},
		{[]string{"migrate", "now"}, `mailgate migrate: unexpected argument "now"`, "Usage: mailgate migrate"},
		{[]string{"dev", "--bogus"}, "mailgate dev: flag provided but not defined: -bogus", "Usage: mailgate dev"},
		{[]string{"version", "--short"}, "mailgate version: flag provided but not defined: -short", "Usage: mailgate version"},
		{[]string{"tenant"}, "mailgate tenant: tenant needs a subcommand", "Usage: mailgate tenant COMMAND"},
		{[]string{"tenant", "suspend"}, `mailgate tenant: unknown tenant command "suspend"`, "Usage: mailgate tenant COMMAND"},
		{[]string{"account"}, "mailgate account: account needs a subcommand", "Usage: mailgate account COMMAND"},
		{[]string{"token", "revoke"}, `mailgate token: unknown token command "revoke"`, "Usage: mailgate token COMMAND"},
		{[]string{"tenant", "create", "--name", "Acme"}, "mailgate tenant create: --name and at least one --sender-domain are required", "Usage: mailgate tenant create"},
		{[]string{"tenant", "create", "--sender-domain", "acme.example"}, "mailgate tenant create: --name and at least one --sender-domain are required", "Usage: mailgate tenant create"},
		{[]string{"tenant", "create", "--name"}, "mailgate tenant create: flag needs an argument: -name", "Usage: mailgate tenant create"},
		{[]string{"tenant", "dkim", "--subscription", tenant, "--domain", "acme.example"}, "mailgate tenant dkim: --domain and --selector are required", "Usage: mailgate tenant dkim"},
		{[]string{"tenant", "dkim", "--subscription", tenant, "--domain", "acme.example", "--selector", "s", "--algorithm", "md5"}, `mailgate tenant dkim: --algorithm must be rsa-sha256 or ed25519-sha256, got "md5"`, "Usage: mailgate tenant dkim"},
		{[]string{"tenant", "dkim", "--domain", "acme.example", "--selector", "s"}, "mailgate tenant dkim: --subscription is required", "Usage: mailgate tenant dkim"},
		{[]string{"account", "create", "--email", "ops@acme.example"}, "mailgate account create: --subscription is required", "Usage: mailgate account create"},
		{[]string{"account", "create", "--subscription", tenant}, "mailgate account create: --email is required", "Usage: mailgate account create"},
		{[]string{"token", "issue"}, "mailgate token issue: --subscription is required", "Usage: mailgate token issue"},
		{[]string{"token", "issue", "--subscription", "not-a-uuid"}, `mailgate token issue: --subscription must be a UUID, got "not-a-uuid"`, "Usage: mailgate token issue"},
		{[]string{"token", "issue", "--subscription", tenant, "--ttl", "soon"}, `mailgate token issue: invalid value "soon" for flag -ttl: parse error`, "Usage: mailgate token issue"},
		{[]string{"token", "issue", "--subscription", tenant, "--ttl", "-1h"}, "mailgate token issue: --ttl must be positive, got -1h0m0s", "Usage: mailgate token issue"},
	}
	for _, tc := range cases {
		code, out, errOut := runCLI(t, env, tc.args...)
		errLine, rest, _ := strings.Cut(errOut, "\n")
		if code != exitBadUsage || out != "" || errLine != tc.wantError || !strings.HasPrefix(rest, tc.wantUsage) {
			t.Errorf("mailgate %s: exit %d, stdout %q, stderr %q;\nwant exit 2, nothing on stdout, and on stderr %q then %q...",
				strings.Join(tc.args, " "), code, out, errOut, tc.wantError, tc.wantUsage)
		}
	}
	if n := tw.hits.Load(); n != 0 {
		t.Errorf("usage errors connected to the database %d times", n)
	}
}

func TestVersionCommand(t *testing.T) {
	t.Parallel()
	want := currentBuild()
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		code, out, errOut := runCLI(t, map[string]string{"MAILGATE_WORKERS": "not a number"}, args...)
		if code != exitOK || errOut != "" {
			t.Errorf("mailgate %s: exit %d, stderr %q", args[0], code, errOut)
		}
		for _, field := range []string{"mailgate " + want.Version + "\n", "commit: " + want.Commit + "\n", "built:  " + want.Date + "\n", "go:     " + want.GoVersion + " "} {
			if !strings.Contains(out, field) {
				t.Errorf("mailgate %s printed %q, missing %q", args[0], out, field)
			}
		}
	}
}

func TestResolveBuild(t *testing.T) {
	t.Parallel()
	vcs := &debug.BuildInfo{
		GoVersion: "go1.26.1",
		Main:      debug.Module{Path: "github.com/mailgate/mailgate", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef"},
			{Key: "vcs.time", Value: "2026-02-03T04:05:06Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	installed := &debug.BuildInfo{GoVersion: "go1.26.2", Main: debug.Module{Path: "github.com/mailgate/mailgate", Version: "v1.4.0"}}
	stamped := buildInfo{Version: "v1.5.0-3-gabc1234-dirty", Commit: "abc1234def", Date: "2026-03-04T05:06:07Z"}
	cases := []struct {
		name     string
		stamped  buildInfo
		embedded *debug.BuildInfo
		want     buildInfo
	}{
		{"StampedWins", stamped, vcs, buildInfo{"v1.5.0-3-gabc1234-dirty", "abc1234def", "2026-03-04T05:06:07Z", "go1.26.1"}},
		{"VCSFallback", buildInfo{}, vcs, buildInfo{"dev", "0123456789abcdef-dirty", "2026-02-03T04:05:06Z", "go1.26.1"}},
		{"ModuleVersion", buildInfo{}, installed, buildInfo{"v1.4.0", "unknown", "unknown", "go1.26.2"}},
		{"StampedVersionOnly", buildInfo{Version: "v2.0.0"}, vcs, buildInfo{"v2.0.0", "0123456789abcdef-dirty", "2026-02-03T04:05:06Z", "go1.26.1"}},
		{"Nothing", buildInfo{}, nil, buildInfo{"dev", "unknown", "unknown", runtime.Version()}},
	}
	for _, tc := range cases {
		if got := resolveBuild(tc.stamped, tc.embedded); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// buildMailgate compiles ./cmd/mailgate into bin with extra go build flags;
// the test is skipped where there is no go tool.
func buildMailgate(t *testing.T, bin string, extra ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	cmd := exec.Command(goBin, slices.Concat([]string{"build", "-o", bin}, extra, []string{"./cmd/mailgate"})...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", extra, err, out)
	}
	return bin
}

// TestBuiltBinary builds the real binary, once stamped as `make build` does
// and once plain, and runs it: the stamp shows in --version, the VCS
// fallback in the plain one, and the exit codes survive main. Not parallel:
// compiling on a small machine would starve the gateway tests' deadlines, so
// it runs before they resume.
func TestBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	build := func(name string, extra ...string) string {
		t.Helper()
		return buildMailgate(t, filepath.Join(dir, name), extra...)
	}
	const pkg = "github.com/mailgate/mailgate/app"
	stamped := build("mailgate-stamped", "-trimpath", "-buildvcs=auto", "-tags", "nomsgpack", "-ldflags",
		"-s -w -X "+pkg+".version=v9.8.7-test -X "+pkg+".commit=feedface1234 -X "+pkg+".buildDate=2026-05-06T07:08:09Z")
	// The release build tags (Makefile GOTAGS, Dockerfile) leave gin's
	// MessagePack codec out: the gateway never speaks it.
	if info, err := buildinfo.ReadFile(stamped); err != nil {
		t.Fatal(err)
	} else {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/ugorji/go/codec" {
				t.Errorf("the release build links %s", dep.Path)
			}
		}
	}
	tw := newTripwire(t)
	runBin := func(bin string, args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"MAILGATE_DATABASE_URL=" + tw.url, "MAILGATE_HTTP_ADDR=127.0.0.1:0", "MAILGATE_ADMIN_ADDR=127.0.0.1:0"}
		cmd.Dir = dir
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("%s %v: %v", bin, args, err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
	}
	for _, arg := range []string{"--version", "version"} {
		code, out, _ := runBin(stamped, arg)
		for _, want := range []string{"mailgate v9.8.7-test\n", "commit: feedface1234\n", "built:  2026-05-06T07:08:09Z\n"} {
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("stamped %s: exit %d, %q; want %q", arg, code, out, want)
			}
		}
	}
	if code, out, _ := runBin(stamped, "migrate", "--help"); code != 0 || !strings.HasPrefix(out, "Usage: mailgate migrate") {
		t.Errorf("migrate --help: exit %d %q", code, out)
	}
	if code, _, errOut := runBin(stamped, "migrate", "--bogus"); code != 2 || !strings.HasPrefix(errOut, "mailgate migrate: ") {
		t.Errorf("migrate --bogus: exit %d %q", code, errOut)
	}
	if n := tw.hits.Load(); n != 0 {
		t.Errorf("the binary connected to the database %d times", n)
	}

	// Unstamped, it reports what the toolchain embedded: the VCS revision and
	// time in a plain checkout (not in a git worktree, which go build does not
	// recognise), else dev and unknown.
	plain := build("mailgate-plain", "-trimpath", "-buildvcs=auto")
	embedded, err := buildinfo.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	_ = resolveBuild(buildInfo{}, embedded).write(&want)
	if code, out, _ := runBin(plain, "version"); code != 0 || out != want.String() {
		t.Errorf("unstamped version: exit %d, %q; want %q", code, out, want.String())
	}
	t.Logf("unstamped binary reports:\n%s", want.String())
}

package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/httpapi/wire"
	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/db"
	"github.com/mailgate/mailgate/domain"
)

// Env is what the CLI reads from and writes to its process.
type Env struct {
	Args   []string
	Getenv func(string) string
	Stdout io.Writer
	Stderr io.Writer
}

// Exit codes, as the README documents them.
const (
	exitOK       = 0
	exitFailed   = 1
	exitBadUsage = 2
)

// command is one operator command: how it is typed, what it is for, and its
// flags. define only declares the flags and returns the body, which runs once
// they have parsed, so asking for help never reaches it.
type command struct {
	name    string // as typed after mailgate, e.g. "tenant create"
	args    string // the synopsis after the name
	summary string
	define  func(fs *flag.FlagSet) commandBody
}

// commandBody does a command's work. Flags that parsed but make no sense
// come back as a usage error (badUsage).
type commandBody func(ctx context.Context, inv invocation) error

// invocation is what a command body works with.
type invocation struct {
	env    Env
	logger *slog.Logger
}

// config loads the MAILGATE_* variables. Bodies call it after checking their
// flags, and help never loads it, so a bad variable can't hide the usage.
func (inv invocation) config() (Config, error) { return LoadConfig(inv.env.Getenv) }

// commands lists every operator command, in the order usage shows them.
func commands() []command {
	return []command{
		{"serve", "[--role all|api|worker|inbound]", "run the HTTP API, the delivery workers and/or the inbound SMTP listener", defineServe},
		{"migrate", "", "apply Mailgate's and River's migrations (safe to repeat)", defineMigrate},
		{"dev", "", "everything in one process on embedded defaults", defineDev},
		{"tenant create", "--name N --sender-domain D [--sender-domain D2]", "create a tenant; prints JSON with subscription_id", defineTenantCreate},
		{"tenant dkim", "--subscription S --domain D --selector SEL [--algorithm rsa-sha256|ed25519-sha256]", "generate and store a DKIM key; prints the DNS record", defineTenantDKIM},
		{"tenant inbound", "--subscription S [--return-path-domain D] [--replies on|off]", "set a tenant's return-path domain and reply routing; prints the DNS records", defineTenantInbound},
		{"account create", "--subscription S --email E [--display-name N]", "create a sender account; prints JSON with account_id", defineAccountCreate},
		{"token issue", "--subscription S [--ttl 24h] [--admin]", "print a signed JWT for a tenant", defineTokenIssue},
		{"version", "", "print the version, commit and build date", defineVersion},
	}
}

// usageError is a command line that can't run as typed. Main prints it on one
// line, then the usage of what it concerns, and exits 2.
type usageError struct {
	topic string // a command or group name; "" for mailgate itself
	err   error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// badUsage is what a command body returns for flags that make no sense; run
// files it under the command.
func badUsage(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// Main runs the CLI and returns the process exit code: 0 when it did what was
// asked (help included), 1 when that failed, 2 when the command line was wrong.
func Main(ctx context.Context, env Env) int {
	logger := slog.New(slog.NewJSONHandler(env.Stderr, nil))
	err := run(ctx, env, logger)
	var bad *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &bad):
		fmt.Fprintf(env.Stderr, "%s: %s\n", strings.TrimSpace("mailgate "+bad.topic), strings.Join(strings.Fields(bad.Error()), " "))
		_ = writeUsage(env.Stderr, bad.topic)
		return exitBadUsage
	default:
		fmt.Fprintln(env.Stderr, "mailgate:", err)
		return exitFailed
	}
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

func run(ctx context.Context, env Env, logger *slog.Logger) error {
	args := env.Args
	switch {
	case len(args) == 0:
		return &usageError{err: errors.New("no command given")}
	case isHelp(args[0]):
		return helpCommand(env.Stdout, args[1:])
	case args[0] == "-version" || args[0] == "--version":
		if len(args) > 1 {
			return &usageError{err: fmt.Errorf("%s takes no arguments", args[0])}
		}
		return currentBuild().write(env.Stdout)
	case isGroup(args[0]) && len(args) > 1 && isHelp(args[1]):
		return writeUsage(env.Stdout, args[0])
	}
	cmd, rest, err := lookup(args)
	if err != nil {
		return err
	}
	fs := newFlagSet(cmd)
	body := cmd.define(fs)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return writeUsage(env.Stdout, cmd.name)
		}
		return &usageError{topic: cmd.name, err: err}
	}
	if fs.NArg() > 0 {
		return &usageError{topic: cmd.name, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	err = body(ctx, invocation{env: env, logger: logger})
	if bad := (*usageError)(nil); errors.As(err, &bad) && bad.topic == "" {
		bad.topic = cmd.name
	}
	return err
}

// newFlagSet is silent: the flag package would print errors and usage to one
// writer, but help belongs on stdout and mistakes on stderr, so run and Main
// print them.
func newFlagSet(cmd command) *flag.FlagSet {
	fs := flag.NewFlagSet("mailgate "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// lookup finds the command args begins with and returns the arguments after
// its name.
func lookup(args []string) (command, []string, error) {
	all := commands()
	if len(args) > 1 {
		if i := slices.IndexFunc(all, func(c command) bool { return c.name == args[0]+" "+args[1] }); i >= 0 {
			return all[i], args[2:], nil
		}
	}
	if i := slices.IndexFunc(all, func(c command) bool { return c.name == args[0] }); i >= 0 {
		return all[i], args[1:], nil
	}
	switch {
	case !isGroup(args[0]):
		return command{}, nil, &usageError{err: fmt.Errorf("unknown command %q", args[0])}
	case len(args) == 1:
		return command{}, nil, &usageError{topic: args[0], err: fmt.Errorf("%s needs a subcommand", args[0])}
	default:
		return command{}, nil, &usageError{topic: args[0], err: fmt.Errorf("unknown %s command %q", args[0], args[1])}
	}
}

// isGroup reports whether name is the first word of two-word commands, such
// as tenant.
func isGroup(name string) bool {
	return slices.ContainsFunc(commands(), func(c command) bool { return strings.HasPrefix(c.name, name+" ") })
}

// helpCommand answers `mailgate help [COMMAND]`.
func helpCommand(w io.Writer, topic []string) error {
	if len(topic) == 0 {
		return writeUsage(w, "")
	}
	if isGroup(topic[0]) && len(topic) == 1 {
		return writeUsage(w, topic[0])
	}
	cmd, rest, err := lookup(topic)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return &usageError{err: fmt.Errorf("help takes one command, got %q", strings.Join(topic, " "))}
	}
	return writeUsage(w, cmd.name)
}

// writeUsage prints the usage of mailgate (topic ""), of a group, or of one
// command with its flags.
func writeUsage(w io.Writer, topic string) error {
	var listed []command
	for _, c := range commands() {
		if c.name == topic {
			return writeCommandUsage(w, c)
		}
		if topic == "" || strings.HasPrefix(c.name, topic+" ") {
			listed = append(listed, c)
		}
	}
	var b strings.Builder
	if topic == "" {
		b.WriteString("mailgate — a multi-tenant mail gateway\n\nUsage: mailgate COMMAND [flags]\n\nCommands:\n")
	} else {
		fmt.Fprintf(&b, "Usage: mailgate %s COMMAND [flags]\n\nCommands:\n", topic)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	for _, c := range listed {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimPrefix(c.name, topic+" "), c.summary)
	}
	if topic == "" {
		fmt.Fprintf(tw, "  --version\tthe same as version\n")
	}
	_ = tw.Flush()
	if topic != "" {
		fmt.Fprintf(&b, "\nmailgate %s COMMAND --help shows a command's flags.\n", topic)
	} else {
		b.WriteString(`
mailgate COMMAND --help (or -h, or mailgate help COMMAND) shows a command's
flags and does nothing else. Exit status: 0 done, 1 failed, 2 usage error.

Environment: MAILGATE_DATABASE_URL, MAILGATE_HTTP_ADDR, MAILGATE_ADMIN_ADDR,
MAILGATE_SMTP_URL, MAILGATE_JWT_SECRET, MAILGATE_JWT_PUBLIC_KEYS, MAILGATE_WORKERS
and more; see the README.
`)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeCommandUsage(w io.Writer, c command) error {
	fs := newFlagSet(c)
	c.define(fs)
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\n%s.\n", strings.TrimSpace("mailgate "+c.name+" "+c.args), strings.ToUpper(c.summary[:1])+c.summary[1:])
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		b.WriteString("\nFlags:\n")
		fs.SetOutput(&b)
		fs.PrintDefaults()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func defineVersion(*flag.FlagSet) commandBody {
	return func(_ context.Context, inv invocation) error { return currentBuild().write(inv.env.Stdout) }
}

func defineServe(fs *flag.FlagSet) commandBody {
	role := fs.String("role", RoleAll, "all, api, worker or inbound")
	return func(ctx context.Context, inv invocation) error {
		if !slices.Contains([]string{RoleAll, RoleAPI, RoleWorker, RoleInbound}, *role) {
			return badUsage("--role must be all, api, worker or inbound, got %q", *role)
		}
		cfg, err := inv.config()
		if err != nil {
			return err
		}
		return runUntilSignal(ctx, cfg, *role, inv.logger, nil)
	}
}

func defineDev(*flag.FlagSet) commandBody {
	return func(ctx context.Context, inv invocation) error {
		cfg, err := inv.config()
		if err != nil {
			return err
		}
		return devCommand(ctx, cfg, inv.env, inv.logger)
	}
}

// runUntilSignal starts the gateway and shuts it down on SIGINT or SIGTERM.
// SIGTERM, an orchestrator's stop, first drains for MAILGATE_DRAIN_DELAY:
// readiness fails while requests are still served, so none routed during
// endpoint propagation is refused. SIGINT (Ctrl-C), or a second signal
// during the drain, shuts down at once.
func runUntilSignal(ctx context.Context, cfg Config, role string, logger *slog.Logger, started func(*App)) error {
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	a, err := New(ctx, cfg, role, logger)
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		_ = a.Shutdown(context.Background())
		return err
	}
	if started != nil {
		started(a)
	}
	var serveErr error
	select {
	case sig := <-signals:
		if sig == syscall.SIGTERM && cfg.DrainDelay > 0 {
			logger.Info("draining", "delay", cfg.DrainDelay.String())
			drainCtx, cancel := context.WithCancel(ctx)
			go func() {
				select {
				case <-signals:
					cancel()
				case <-drainCtx.Done():
				}
			}()
			a.Drain(drainCtx, cfg.DrainDelay)
			cancel()
		}
		logger.Info("shutting down", "grace", cfg.ShutdownGrace.String())
	case <-ctx.Done():
		logger.Info("shutting down", "grace", cfg.ShutdownGrace.String())
	case serveErr = <-a.Errors():
		logger.Error("listener failed", "error", serveErr)
	}
	return errors.Join(serveErr, a.Shutdown(context.Background()))
}

// defineMigrate applies the migrations as the schema owner and then makes
// sure the runtime role exists with its grants.
func defineMigrate(*flag.FlagSet) commandBody {
	return func(ctx context.Context, inv invocation) error {
		cfg, err := inv.config()
		if err != nil {
			return err
		}
		res, err := migrate(ctx, cfg)
		if err != nil {
			return err
		}
		return writeJSON(inv.env.Stdout, map[string]any{
			"applied": orEmpty(res.Applied), "river_versions_applied": orEmpty(res.RiverVersions), "runtime_role": cfg.DatabaseRole,
		})
	}
}

func migrate(ctx context.Context, cfg Config) (db.Result, error) {
	pool, err := openPool(ctx, cfg.MigrationDatabaseURL, 1, "", 0)
	if err != nil {
		return db.Result{}, err
	}
	defer pool.Close()
	res, err := db.Migrate(ctx, pool)
	if err != nil {
		return res, err
	}
	return res, db.EnsureRuntimeRole(ctx, pool, cfg.DatabaseRole)
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func withStore(ctx context.Context, cfg Config, fn func(*postgres.Store) error) error {
	pool, err := openPool(ctx, cfg.DatabaseURL, 1, cfg.DatabaseRole, 0)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(postgres.New(pool, nil))
}

// subscriptionFlag parses a required --subscription as a tenant id.
func subscriptionFlag(s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.Nil, badUsage("--subscription is required")
	}
	id, err := ensureUUID("subscription", s)
	if err != nil {
		return id, badUsage("%w", err)
	}
	return id, nil
}

func defineTenantCreate(fs *flag.FlagSet) commandBody {
	name := fs.String("name", "", "the tenant's name (required)")
	var domains stringList
	fs.Var(&domains, "sender-domain", "a verified sender domain (required, repeatable)")
	return func(ctx context.Context, inv invocation) error {
		if *name == "" || len(domains) == 0 {
			return badUsage("--name and at least one --sender-domain are required")
		}
		cfg, err := inv.config()
		if err != nil {
			return err
		}
		return withStore(ctx, cfg, func(s *postgres.Store) error {
			for i, d := range domains {
				domains[i] = asciiDomain(d)
			}
			t, err := s.CreateTenant(ctx, *name, domains)
			if err != nil {
				return err
			}
			return writeJSON(inv.env.Stdout, map[string]any{
				"subscription_id": t.ID, "name": t.Name, "status": t.Status, "sender_domains": t.SenderDomains, "created_at": t.CreatedAt,
			})
		})
	}
}

func defineAccountCreate(fs *flag.FlagSet) commandBody {
	sub := fs.String("subscription", "", "the tenant's subscription_id (required)")
	email := fs.String("email", "", "the account's address, on a verified domain of the tenant (required)")
	display := fs.String("display-name", "", "the account's display name")
	return func(ctx context.Context, inv invocation) error {
		tenant, err := subscriptionFlag(*sub)
		if err != nil {
			return err
		}
		if *email == "" {
			return badUsage("--email is required")
		}
		cfg, err := inv.config()
		if err != nil {
			return err
		}
		return withStore(ctx, cfg, func(s *postgres.Store) error {
			addr := *email
			if at := strings.LastIndexByte(addr, '@'); at >= 0 {
				addr = addr[:at+1] + asciiDomain(addr[at+1:])
			}
			a, err := s.CreateAccount(ctx, tenant, addr, *display)
			if err != nil {
				return err
			}
			return writeJSON(inv.env.Stdout, map[string]any{
				"account_id": a.ID, "subscription_id": a.SubscriptionID, "email": a.Email, "display_name": a.DisplayName, "created_at": a.CreatedAt,
			})
		})
	}
}

func defineTokenIssue(fs *flag.FlagSet) commandBody {
	sub := fs.String("subscription", "", "the tenant's subscription_id (required)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	admin := fs.Bool("admin", false, "grant operator endpoints")
	return func(_ context.Context, inv invocation) error {
		tenant, err := subscriptionFlag(*sub)
		if err != nil {
			return err
		}
		if *ttl <= 0 {
			return badUsage("--ttl must be positive, got %s", *ttl)
		}
		cfg, err := inv.config()
		if err != nil {
			return err
		}
		if cfg.JWTSecret == "" {
			return errors.New("MAILGATE_JWT_SECRET must be set to issue tokens")
		}
		auth, err := newAuthenticator(cfg)
		if err != nil {
			return err
		}
		token, err := auth.Issue(tenant, *ttl, *admin)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(inv.env.Stdout, token)
		return err
	}
}

// defineTenantDKIM generates a DKIM key for a tenant's sender domain, stores
// it, and prints the DNS TXT record to publish.
func defineTenantDKIM(fs *flag.FlagSet) commandBody {
	sub := fs.String("subscription", "", "the tenant's subscription_id (required)")
	domainName := fs.String("domain", "", "a verified sender domain of the tenant (required)")
	selector := fs.String("selector", "", "the DKIM selector, e.g. mg2026 (required)")
	algorithm := fs.String("algorithm", string(mailbuild.RSASHA256), "rsa-sha256 or ed25519-sha256")
	return func(ctx context.Context, inv invocation) error {
		tenant, err := subscriptionFlag(*sub)
		if err != nil {
			return err
		}
		if *domainName == "" || *selector == "" {
			return badUsage("--domain and --selector are required")
		}
		alg := mailbuild.DKIMAlgorithm(*algorithm)
		if alg != mailbuild.RSASHA256 && alg != mailbuild.Ed25519SHA256 {
			return badUsage("--algorithm must be %s or %s, got %q", mailbuild.RSASHA256, mailbuild.Ed25519SHA256, *algorithm)
		}
		cfg, err := inv.config()
		if err != nil {
			return err
		}
		key, err := mailbuild.GenerateDKIMKey(alg)
		if err != nil {
			return err
		}
		d := asciiDomain(strings.ToLower(*domainName))
		signer, err := mailbuild.NewDKIMSigner(d, *selector, key)
		if err != nil {
			return err
		}
		record, err := mailbuild.DKIMRecord(key)
		if err != nil {
			return err
		}
		return withStore(ctx, cfg, func(s *postgres.Store) error {
			err := s.SetDKIMKey(ctx, tenant, domain.DKIMKey{Domain: signer.Domain(), Selector: signer.Selector(), Algorithm: string(alg), PrivateKey: key})
			if err != nil {
				return err
			}
			return writeJSON(inv.env.Stdout, map[string]any{
				"domain": signer.Domain(), "selector": signer.Selector(), "algorithm": alg,
				"dns_name": signer.Selector() + "._domainkey." + signer.Domain(), "dns_type": "TXT", "dns_value": record,
			})
		})
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// redactURL hides a password in a connection string before it is printed.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// asciiDomain is the API's conversion of an internationalized domain to
// punycode (UTS #46), so operators may type either form, without the
// trailing dot of an absolute name; what can't be converted is left for the
// domain rules to refuse.
func asciiDomain(d string) string { return strings.TrimSuffix(wire.ASCIIDomain(d), ".") }

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
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/idna"

	"github.com/mailgate/mailgate/adapters/dkim"
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

const usage = `mailgate — a multi-tenant mail gateway

Usage:
  mailgate serve [--role all|api|worker]   run the HTTP API and/or delivery workers
  mailgate migrate                         apply Mailgate's and River's migrations (safe to repeat)
  mailgate dev                             everything in one process on embedded defaults
  mailgate tenant create --name N --sender-domain D [--sender-domain D2]
  mailgate tenant dkim --subscription S --domain D --selector SEL [--algorithm rsa-sha256|ed25519-sha256]
  mailgate account create --subscription S --email E [--display-name N]
  mailgate token issue --subscription S [--ttl 24h] [--admin]

Environment: MAILGATE_DATABASE_URL, MAILGATE_HTTP_ADDR, MAILGATE_ADMIN_ADDR,
MAILGATE_SMTP_URL, MAILGATE_JWT_SECRET, MAILGATE_JWT_PUBLIC_KEYS, MAILGATE_WORKERS.
`

// Main runs the CLI and returns the process exit code.
func Main(ctx context.Context, env Env) int {
	logger := slog.New(slog.NewJSONHandler(env.Stderr, nil))
	err := run(ctx, env, logger)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprint(env.Stderr, usage)
		return 2
	default:
		fmt.Fprintln(env.Stderr, "mailgate:", err)
		return 1
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, env Env, logger *slog.Logger) error {
	args := env.Args
	if len(args) == 0 {
		return errUsage
	}
	cfg, err := LoadConfig(env.Getenv)
	if err != nil {
		return err
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serveCommand(ctx, cfg, rest, env, logger)
	case "migrate":
		return migrateCommand(ctx, cfg, env)
	case "dev":
		return devCommand(ctx, cfg, env, logger)
	case "tenant":
		return tenantCommand(ctx, cfg, rest, env)
	case "account":
		return accountCommand(ctx, cfg, rest, env)
	case "token":
		return tokenCommand(cfg, rest, env)
	case "help", "-h", "--help":
		fmt.Fprint(env.Stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
}

func newFlagSet(name string, env Env) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs
}

func serveCommand(ctx context.Context, cfg Config, args []string, env Env, logger *slog.Logger) error {
	fs := newFlagSet("serve", env)
	role := fs.String("role", RoleAll, "all, api or worker")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return runUntilSignal(ctx, cfg, *role, logger, nil)
}

// runUntilSignal starts the gateway and shuts it down on SIGINT or SIGTERM.
func runUntilSignal(ctx context.Context, cfg Config, role string, logger *slog.Logger, started func(*App)) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
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
	case <-ctx.Done():
		logger.Info("shutting down", "grace", cfg.ShutdownGrace.String())
	case serveErr = <-a.Errors():
		logger.Error("listener failed", "error", serveErr)
	}
	return errors.Join(serveErr, a.Shutdown(context.Background()))
}

// migrateCommand applies the migrations as the schema owner and then makes
// sure the runtime role exists with its grants.
func migrateCommand(ctx context.Context, cfg Config, env Env) error {
	res, err := migrate(ctx, cfg)
	if err != nil {
		return err
	}
	return writeJSON(env.Stdout, map[string]any{
		"applied": orEmpty(res.Applied), "river_versions_applied": orEmpty(res.RiverVersions), "runtime_role": cfg.DatabaseRole,
	})
}

func migrate(ctx context.Context, cfg Config) (db.Result, error) {
	pool, err := openPool(ctx, cfg.MigrationDatabaseURL, 1, "")
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
	pool, err := openPool(ctx, cfg.DatabaseURL, 1, cfg.DatabaseRole)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(postgres.New(pool, nil))
}

func tenantCommand(ctx context.Context, cfg Config, args []string, env Env) error {
	if len(args) > 0 && args[0] == "dkim" {
		return tenantDKIMCommand(ctx, cfg, args[1:], env)
	}
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("usage: mailgate tenant create --name N --sender-domain D [--sender-domain D2]\n       mailgate tenant dkim --subscription S --domain D --selector SEL [--algorithm rsa-sha256|ed25519-sha256]")
	}
	fs := newFlagSet("tenant create", env)
	name := fs.String("name", "", "the tenant's name")
	var domains stringList
	fs.Var(&domains, "sender-domain", "a verified sender domain (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *name == "" || len(domains) == 0 {
		return errors.New("tenant create needs --name and at least one --sender-domain")
	}
	return withStore(ctx, cfg, func(s *postgres.Store) error {
		for i, d := range domains {
			domains[i] = asciiDomain(d)
		}
		t, err := s.CreateTenant(ctx, *name, domains)
		if err != nil {
			return err
		}
		return writeJSON(env.Stdout, map[string]any{
			"subscription_id": t.ID, "name": t.Name, "status": t.Status, "sender_domains": t.SenderDomains, "created_at": t.CreatedAt,
		})
	})
}

func accountCommand(ctx context.Context, cfg Config, args []string, env Env) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("usage: mailgate account create --subscription S --email E [--display-name N]")
	}
	fs := newFlagSet("account create", env)
	sub := fs.String("subscription", "", "the tenant's subscription_id")
	email := fs.String("email", "", "the account's address, on a verified domain of the tenant")
	display := fs.String("display-name", "", "the account's display name")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	tenant, err := ensureUUID("subscription", *sub)
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
		return writeJSON(env.Stdout, map[string]any{
			"account_id": a.ID, "subscription_id": a.SubscriptionID, "email": a.Email, "display_name": a.DisplayName, "created_at": a.CreatedAt,
		})
	})
}

func tokenCommand(cfg Config, args []string, env Env) error {
	if len(args) == 0 || args[0] != "issue" {
		return fmt.Errorf("usage: mailgate token issue --subscription S [--ttl 24h] [--admin]")
	}
	fs := newFlagSet("token issue", env)
	sub := fs.String("subscription", "", "the tenant's subscription_id")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	admin := fs.Bool("admin", false, "grant operator endpoints")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	tenant, err := ensureUUID("subscription", *sub)
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
	_, err = fmt.Fprintln(env.Stdout, token)
	return err
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

// asciiDomain converts an internationalized domain to punycode (UTS #46), so
// operators may type either form; what can't be converted is left for the
// domain rules to refuse.
func asciiDomain(d string) string {
	ascii, err := idna.Lookup.ToASCII(strings.TrimSuffix(d, "."))
	if err != nil {
		return d
	}
	return ascii
}

// tenantDKIMCommand generates a DKIM key for a tenant's sender domain, stores
// it, and prints the DNS TXT record to publish.
func tenantDKIMCommand(ctx context.Context, cfg Config, args []string, env Env) error {
	fs := newFlagSet("tenant dkim", env)
	sub := fs.String("subscription", "", "the tenant's subscription_id")
	domainName := fs.String("domain", "", "a verified sender domain of the tenant")
	selector := fs.String("selector", "", "the DKIM selector, e.g. mg2026")
	algorithm := fs.String("algorithm", string(dkim.RSASHA256), "rsa-sha256 or ed25519-sha256")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tenant, err := ensureUUID("subscription", *sub)
	if err != nil {
		return err
	}
	alg := dkim.Algorithm(*algorithm)
	key, err := dkim.GenerateKey(alg)
	if err != nil {
		return err
	}
	d := asciiDomain(strings.ToLower(*domainName))
	signer, err := dkim.NewSigner(d, *selector, key)
	if err != nil {
		return err
	}
	record, err := dkim.DNSRecord(key)
	if err != nil {
		return err
	}
	return withStore(ctx, cfg, func(s *postgres.Store) error {
		err := s.SetDKIMKey(ctx, tenant, domain.DKIMKey{Domain: signer.Domain(), Selector: signer.Selector(), Algorithm: string(alg), PrivateKey: key})
		if err != nil {
			return err
		}
		return writeJSON(env.Stdout, map[string]any{
			"domain": signer.Domain(), "selector": signer.Selector(), "algorithm": alg,
			"dns_name": signer.Selector() + "._domainkey." + signer.Domain(), "dns_type": "TXT", "dns_value": record,
		})
	})
}

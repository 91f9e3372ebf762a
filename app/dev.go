package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailgate/mailgate/adapters/jwtauth"
	"github.com/mailgate/mailgate/adapters/pgdev"
	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/domain"
)

// devStateDir holds everything `mailgate dev` keeps between runs.
const devStateDir = ".mailgate"

const (
	demoTenantName = "demo"
	demoDomain     = "example.com"
	demoSender     = "demo@example.com"
)

// devCommand is the embedded default: a local database (started if need be),
// migrations, a demo tenant and account, captured mail, and a ready curl.
func devCommand(ctx context.Context, cfg Config, env Env, logger *slog.Logger) error {
	say := func(format string, args ...any) { fmt.Fprintf(env.Stderr, "mailgate dev: "+format+"\n", args...) }
	// The state directory must be searchable by the postgres OS user when a
	// throwaway cluster lives in it; the secrets inside are 0600 files.
	if err := os.MkdirAll(devStateDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", devStateDir, err)
	}
	if err := os.Chmod(devStateDir, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", devStateDir, err)
	}
	dbURL, stopDB, err := pgdev.Ensure(ctx, cfg.DatabaseURL, devStateDir, say)
	if err != nil {
		return err
	}
	defer func() {
		if err := stopDB(); err != nil {
			say("stopping the dev database: %v", err)
		}
	}()
	if cfg.MigrationDatabaseURL == cfg.DatabaseURL {
		cfg.MigrationDatabaseURL = dbURL
	}
	cfg.DatabaseURL = dbURL
	if cfg.JWTSecret == "" {
		if cfg.JWTSecret, err = devSecret(filepath.Join(devStateDir, "jwt-secret")); err != nil {
			return err
		}
	}
	if cfg.SMTPURL == "" {
		cfg.CaptureDir = filepath.Join(devStateDir, "mail")
	}
	if err := devInbound(&cfg.Inbound); err != nil {
		return err
	}
	tenant, account, err := prepareDevDatabase(ctx, cfg)
	if err != nil {
		return err
	}
	auth, err := jwtauth.NewHS256([]byte(cfg.JWTSecret), jwtauth.Options{})
	if err != nil {
		return err
	}
	token, err := auth.Issue(tenant.ID, 7*24*time.Hour, false)
	if err != nil {
		return err
	}
	adminToken, err := auth.Issue(tenant.ID, 7*24*time.Hour, true)
	if err != nil {
		return err
	}
	return runUntilSignal(ctx, cfg, RoleAll, logger, func(a *App) {
		printDevBanner(env, cfg, a, tenant, account, token, adminToken)
	})
}

func prepareDevDatabase(ctx context.Context, cfg Config) (postgres.Tenant, postgres.Account, error) {
	var (
		tenant  postgres.Tenant
		account postgres.Account
	)
	if _, err := migrate(ctx, cfg); err != nil {
		return tenant, account, err
	}
	pool, err := openPool(ctx, cfg.DatabaseURL, 1, cfg.DatabaseRole, 0)
	if err != nil {
		return tenant, account, err
	}
	defer pool.Close()
	store := postgres.New(pool, nil)
	tenant, err = store.FindTenantByName(ctx, demoTenantName)
	if errors.Is(err, domain.ErrNotFound) {
		tenant, err = store.CreateTenant(ctx, demoTenantName, []string{demoDomain})
	}
	if err != nil {
		return tenant, account, fmt.Errorf("demo tenant: %w", err)
	}
	account, err = store.FindAccountByEmail(ctx, tenant.ID, demoSender)
	if errors.Is(err, domain.ErrNotFound) {
		account, err = store.CreateAccount(ctx, tenant.ID, demoSender, "Demo Sender")
	}
	if err != nil {
		return tenant, account, fmt.Errorf("demo account: %w", err)
	}
	return tenant, account, nil
}

// devSecret keeps one generated signing key so tokens survive restarts.
func devSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	secret := hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return secret, nil
}

func printDevBanner(env Env, cfg Config, a *App, tenant postgres.Tenant, account postgres.Account, token, adminToken string) {
	base := "http://" + reachable(a.HTTPAddr())
	delivery := "captured as .eml files in " + cfg.CaptureDir + " (set MAILGATE_SMTP_URL to relay instead)"
	if cfg.SMTPURL != "" {
		delivery = "relayed to " + redactURL(cfg.SMTPURL)
	}
	fmt.Fprintf(env.Stdout, `
Mailgate is running (dev).
  API:        %s   (health: %s/healthz)
  Admin:      http://%s/metrics
  Database:   %s
  Mail:       %s
  Inbound:    smtp://%s (bounces to *@%s, replies to *@%s)
  Tenant:     %s (subscription_id %s)
  Sender:     %s (account_id %s)

Token (valid 7 days):
  export MAILGATE_TOKEN=%s

Send a message:
  curl -sS -X POST %s/api/messages/sendmessage \
    -H "Authorization: Bearer $MAILGATE_TOKEN" -H "Content-Type: application/json" \
    -d '{"sender_email":"%s","sender_display_name":"Demo Sender","to":[{"display_name":"Ada","email_address":"ada@example.net"}],"subject":"Hello from Mailgate","body":"It works.","importance":1,"send":true}'

Then read it back with GET %s/api/messages/{id}; the API is described at %s/help.

Operator token (admin endpoints, River UI at http://%s/admin/river/ with "Authorization: Bearer ..."):
  export MAILGATE_ADMIN_TOKEN=%s

Stop with Ctrl-C.
`, base, base, reachable(a.AdminAddr()), redactURL(cfg.DatabaseURL), delivery, reachable(a.InboundAddr()), cfg.Inbound.BounceDomain, cfg.Inbound.ReplyDomain,
		tenant.Name, tenant.ID, account.Email, account.ID, token, base, account.Email, base, base, reachable(a.AdminAddr()), adminToken)
}

// reachable turns a listen address such as [::]:8080 into one a browser can use.
func reachable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// devInbound gives dev its own bounce and reply domains, a kept VERP key
// and a free loopback port, unless the environment configured them.
func devInbound(c *InboundConfig) error {
	if !c.Enabled() {
		c.BounceDomain, c.ReplyDomain = "bounces.mailgate.localhost", "reply.mailgate.localhost"
	}
	if len(c.TokenKeys) == 0 {
		key, err := devSecret(filepath.Join(devStateDir, "verp-key"))
		if err != nil {
			return err
		}
		c.TokenKeys = [][]byte{[]byte(key)}
	}
	if c.Addr == defaultInboundAddr {
		c.Addr = "127.0.0.1:0"
	}
	return nil
}

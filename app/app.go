package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/mailgate/mailgate/adapters/httpapi"
	"github.com/mailgate/mailgate/adapters/jwtauth"
	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/adapters/metrics"
	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/adapters/smtprelay"
	"github.com/mailgate/mailgate/adapters/webhook"
	"github.com/mailgate/mailgate/db"
	"github.com/mailgate/mailgate/domain"
	"github.com/mailgate/mailgate/jobs"
)

// Roles a process can take.
const (
	RoleAll    = "all"
	RoleAPI    = "api"
	RoleWorker = "worker"
	// RoleInbound runs the inbound SMTP listener (bounces, complaints, replies).
	RoleInbound = "inbound"
)

// App is a running gateway: the public API, the admin listener and the River
// workers, as the role asks.
type App struct {
	cfg     Config
	role    string
	logger  *slog.Logger
	pool    *pgxpool.Pool
	store   *postgres.Store
	metrics *metrics.Metrics
	river   *river.Client[pgx.Tx]
	// stranded gives back the jobs this worker fetched but never started.
	stranded *jobs.StrandedRescuer

	httpServer, adminServer *http.Server
	httpListener            net.Listener
	adminListener           net.Listener
	serveErr                chan error
	auth                    *jwtauth.Authenticator
	relay                   *smtprelay.Transport
	riverUI                 *riverui.Handler
	// fair tags new delivery jobs for fair ordering between tenants.
	fair *jobs.FairClock
	// stop ends background work tied to the app's life (the SIGHUP watcher).
	stop context.CancelFunc
	// draining is set by Drain: /readyz fails while requests are still served.
	draining atomic.Bool
	// inbound is the inbound SMTP listener, nil when this role runs none.
	inbound *inboundListener
	// inboundObs counts inbound mail (listener and processing).
	inboundObs *metrics.Inbound
}

// The adapters the workers are given satisfy the ports jobs declares.
var (
	_ jobs.Transport     = (*smtprelay.Deliverer)(nil)
	_ jobs.WebhookSender = (*webhook.Sender)(nil)
)

// errDraining is /readyz's answer once a shutdown has begun.
var errDraining = errors.New("draining: shutting down")

// New connects to the database and wires the gateway for role; Start runs it.
func New(ctx context.Context, cfg Config, role string, logger *slog.Logger) (*App, error) {
	if role != RoleAll && role != RoleAPI && role != RoleWorker && role != RoleInbound {
		return nil, fmt.Errorf("unknown role %q: use all, api, worker or inbound", role)
	}
	a := &App{cfg: cfg, role: role, logger: logger, metrics: metrics.New(metrics.Options{TenantLabels: cfg.MetricsTenantLabels, Build: currentBuild().forMetrics()}), serveErr: make(chan error, 2)}
	statementTimeout := defaultStatementTimeout
	if role != RoleWorker {
		// An API call's statement can't usefully outlive the request; the
		// server stops it even when the client's cancel can't reach it.
		statementTimeout = min(statementTimeout, cmp.Or(cfg.RequestTimeout, DefaultRequestTimeout))
	}
	// The pool grows with the workers only where they run: an API or
	// inbound replica sized for 200 workers would hold 36 connections of
	// the server's max_connections for nothing.
	poolWorkers := 0
	if a.runsWorkers() {
		poolWorkers = cfg.Workers
	}
	pool, err := openPool(ctx, cfg.DatabaseURL, poolWorkers, cfg.DatabaseRole, statementTimeout)
	if err != nil {
		return nil, err
	}
	a.pool = pool
	if err := a.wire(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return a, nil
}

// openPool connects to the database. With a role, every connection works as
// that role (row-level security applies); without one, as the URL's user
// (migrations, which need the owner).
// statementTimeout bounds the runtime role's statements (0: the default).
func openPool(ctx context.Context, url string, workers int, role string, statementTimeout time.Duration) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	db.RegisterTypes(cfg)
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// A database that accepts TCP and then says nothing (a partition, a
		// frozen host) would otherwise hold a new connection, and the pool
		// slot it fills, for as long as the kernel keeps trying.
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if role != "" {
		if err := db.UseRuntimeRole(cfg, role); err != nil {
			return nil, err
		}
		boundSessions(cfg.ConnConfig.RuntimeParams, cmp.Or(statementTimeout, defaultStatementTimeout))
	}
	if !strings.Contains(url, "pool_max_conns") {
		// Workers hold a connection only for a moment: their reads and
		// writes are batched across deliveries (a few loaders and group
		// committers), and SMTP runs without one. So the pool grows slowly
		// with the workers, well inside a server's max_connections.
		cfg.MaxConns = int32(min(16+workers/10, 48))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to the database at %s: %w", redactURL(url), err)
	}
	return pool, nil
}

const (
	// defaultStatementTimeout bounds a worker's statements, and an API's
	// when its request deadline is longer.
	defaultStatementTimeout = 60 * time.Second
	// defaultConnectTimeout bounds opening a database connection unless the
	// URL sets connect_timeout.
	defaultConnectTimeout = 5 * time.Second
)

// boundSessions caps how long the gateway's own transactions can stay open,
// unless the database URL sets these itself. A transaction that holds an id
// holds the event feed back for every tenant until it ends (see README, "The
// event feed"), so a stuck statement is cancelled and a session left idle
// inside a transaction is closed. Migrations don't go through here: they may
// need longer.
func boundSessions(params map[string]string, statementTimeout time.Duration) {
	for name, value := range map[string]string{
		"statement_timeout":                   strconv.FormatInt(statementTimeout.Milliseconds(), 10) + "ms",
		"idle_in_transaction_session_timeout": "30s",
	} {
		if _, set := params[name]; !set {
			params[name] = value
		}
	}
}

func (a *App) wire(ctx context.Context) error {
	jobsCfg := jobs.Config{
		Workers:           a.cfg.Workers,
		FetchCooldown:     a.cfg.FetchCooldown,
		FetchPollInterval: a.cfg.FetchPollEvery,
		RetryBase:         a.cfg.RetryBase,
		Logger:            a.logger,
	}
	insertClient, err := jobs.NewInsertClient(a.pool, jobsCfg)
	if err != nil {
		return err
	}
	a.fair = jobs.NewFairClock()
	a.store = postgres.New(a.pool, jobs.NewEnqueuer(insertClient, a.fair))
	a.river = insertClient
	if a.runsWorkers() {
		transport, err := a.transport()
		if err != nil {
			return err
		}
		addresses, err := a.cfg.Inbound.addresses()
		if err != nil {
			return err
		}
		delivery := jobs.NewDeliveryWorker(a.store, transport, mailbuild.NewRenderer().Render, a.cfg.MaxDeliveryAge, a.logger).
			WithInboundAddresses(addresses).
			LimitPerTenant(a.cfg.TenantMaxDeliveries).WithAttemptTimeout(a.cfg.DeliveryTimeout).Observe(a.metrics).
			ObservePhases(metrics.NewDeliveryPhases(a.metrics.Registry))
		webhookTimeout := cmp.Or(a.cfg.WebhookTimeout, jobs.DefaultWebhookAttemptTimeout)
		workers := jobs.Workers{
			Delivery: delivery,
			Purge:    jobs.NewPurgeExpiredWorker(a.store, jobs.AttachmentGracePeriod, a.logger),
			Webhooks: jobs.NewDeliverWebhookWorker(a.store,
				webhook.NewSender(webhook.Options{AllowPrivateNetworks: a.cfg.WebhookAllowPrivate, Timeout: webhookTimeout}),
				a.metrics, a.logger).WithAttemptTimeout(webhookTimeout),
			Reconcile: jobs.NewReconcileWorker(a.store, 30*time.Second, a.cfg.MaxDeliveryAge, a.logger),
			Release:   jobs.NewReleaseHeldWorker(a.store),
			Inbound:   a.newInboundWorker(addresses),
			// Settled inbound mail is deleted after its retention whether
			// or not this process receives any: another one may.
			InboundRetention: jobs.NewPurgeInboundWorker(a.store, a.cfg.Inbound.Retention, a.logger),
		}
		if a.river, a.stranded, err = jobs.NewWorkerClient(a.pool, jobsCfg, workers); err != nil {
			return err
		}
		a.store.SetJobCompleter(jobs.NewJobCompleter(a.river))
	}
	if a.role == RoleAll || a.role == RoleAPI {
		verifier, err := newVerifier(a.cfg, a.store)
		if err != nil {
			return err
		}
		a.auth = verifier.auth
		composer := &domain.Composer{Store: a.store}
		api := httpapi.New(httpapi.Deps{
			Verifier:            verifier,
			Composer:            composer,
			Batch:               composer,
			Control:             a.store,
			Idempotency:         a.store,
			Messages:            a.store,
			Attachments:         a.store,
			Admin:               a.store,
			Suppressions:        a.store,
			Webhooks:            a.store,
			Mailbox:             a.store,
			MailboxAttachments:  a.store,
			InboundAdmin:        a.store,
			ValidateWebhookURL:  func(raw string) error { return webhook.ValidateURL(raw, a.cfg.WebhookAllowPrivate) },
			WebhookMaxEndpoints: a.cfg.WebhookMaxEndpoints,
			RateLimiter:         httpapi.NewClusterLimiter(a.store, a.cfg.RateLimit, a.cfg.RateBurst, nil),
			AttachmentPolicy:    a.cfg.attachmentPolicy(),
			Ready:               a.ready,
			Bounds: httpapi.Bounds{Request: cmp.Or(a.cfg.RequestTimeout, DefaultRequestTimeout),
				BodyMinRate: a.cfg.BodyMinRate, BodyGrace: cmp.Or(a.cfg.BodyGrace, defaultBodyGrace)},
			Unavailable: postgres.IsUnavailable,
			Observer:    a.metrics,
			Logger:      a.logger,
		})
		a.httpServer = &http.Server{Handler: api.Handler(), ReadHeaderTimeout: cmp.Or(a.cfg.HeaderTimeout, defaultHeaderTimeout), IdleTimeout: 2 * time.Minute}
	}
	a.metrics.RegisterQueue(a.store.QueueStats, []string{jobs.QueueDelivery, jobs.QueueWebhooks, jobs.QueueMaintenance}, a.logger)
	a.metrics.RegisterEventFeed(a.store.EventFeedLag, a.logger)
	a.metrics.RegisterPendingMessages(a.store.PendingMessages, a.logger)
	if a.runsWorkers() {
		a.metrics.SetWorkers(a.cfg.Workers)
	}
	if err := a.wireInbound(); err != nil {
		return err
	}
	ui, err := a.newRiverUI(a.river)
	if err != nil {
		return fmt.Errorf("river UI: %w", err)
	}
	a.riverUI = ui
	a.adminServer = &http.Server{Handler: a.adminHandler(ui), ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// transport picks the relay in MAILGATE_SMTP_URL, or the capture directory in dev.
func (a *App) transport() (jobs.Transport, error) {
	var sender smtprelay.Sender
	switch {
	case a.cfg.SMTPURL != "":
		relayCfg, err := smtprelay.ParseURL(a.cfg.SMTPURL)
		if err != nil {
			return nil, fmt.Errorf("MAILGATE_SMTP_URL: %w", err)
		}
		relayCfg.Timeout, relayCfg.DataTimeout = a.cfg.SMTPTimeout, a.cfg.SMTPDataTimeout
		relayCfg.MaxConns = a.cfg.SMTPMaxConns
		a.relay = smtprelay.NewTransport(relayCfg)
		sender = a.relay
	case a.cfg.CaptureDir != "":
		capture, err := smtprelay.NewCapture(a.cfg.CaptureDir)
		if err != nil {
			return nil, err
		}
		sender = capture
	default:
		return nil, errors.New("MAILGATE_SMTP_URL is required for a worker (smtp://user:pass@host:port)")
	}
	return smtprelay.NewDeliverer(sender, a.metrics), nil
}

// verifier adapts the JWT adapter to the API's port and refuses tokens of
// suspended or unknown tenants.
type verifier struct {
	auth     *jwtauth.Authenticator
	statuses *statusCache
}

func newVerifier(cfg Config, store *postgres.Store) (verifier, error) {
	if cfg.JWTSecret == "" && cfg.JWTPublicKeys == "" {
		return verifier{}, errors.New("set MAILGATE_JWT_SECRET (an HS256 key of at least 32 bytes) or MAILGATE_JWT_PUBLIC_KEYS (a PEM or JWKS file)")
	}
	auth, err := newAuthenticator(cfg)
	if err != nil {
		return verifier{}, err
	}
	return verifier{auth: auth, statuses: newStatusCache(store.TenantStatus, 5*time.Second)}, nil
}

// newAuthenticator builds the token checker from the MAILGATE_JWT_* settings.
func newAuthenticator(cfg Config) (*jwtauth.Authenticator, error) {
	opts := jwtauth.Options{PublicKeysFile: cfg.JWTPublicKeys, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience}
	if cfg.JWTSecret != "" {
		opts.HS256Secret = []byte(cfg.JWTSecret)
	}
	auth, err := jwtauth.NewAuthenticator(opts)
	if err != nil {
		return nil, fmt.Errorf("JWT configuration: %w", err)
	}
	return auth, nil
}

func (v verifier) VerifyToken(ctx context.Context, token string) (httpapi.Principal, error) {
	claims, err := v.auth.Verify(ctx, token)
	if err != nil {
		return httpapi.Principal{}, err
	}
	p := httpapi.Principal{SubscriptionID: claims.SubscriptionID, Admin: claims.Admin}
	if p.Admin {
		// Operators act across tenants; their token's subscription needn't be active.
		return p, nil
	}
	status, err := v.statuses.get(ctx, p.SubscriptionID)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return httpapi.Principal{}, &domain.Error{Code: domain.CodeUnauthorized, Message: "invalid or expired token", Cause: errors.New("unknown subscription")}
	case err != nil:
		return httpapi.Principal{}, err
	case status != domain.TenantActive:
		return httpapi.Principal{}, &domain.Error{Code: domain.CodeForbidden, Message: "the subscription is suspended"}
	}
	return p, nil
}

// ready is /readyz: the database answers and its schema is this binary's.
func (a *App) ready(ctx context.Context) error {
	if a.draining.Load() {
		return errDraining
	}
	current, embedded, err := db.SchemaVersions(ctx, a.pool)
	if err != nil {
		return err
	}
	// A schema ahead of the binary is fine (migrations run before a rollout,
	// and are additive); one behind it is not.
	if current < embedded {
		return fmt.Errorf("database schema is at version %d, this binary needs %d: run mailgate migrate", current, embedded)
	}
	return nil
}

// Start listens on the configured addresses and starts the workers.
func (a *App) Start(ctx context.Context) error {
	var err error
	if a.httpServer != nil {
		if a.httpListener, err = net.Listen("tcp", a.cfg.HTTPAddr); err != nil {
			return fmt.Errorf("listen on MAILGATE_HTTP_ADDR %s: %w", a.cfg.HTTPAddr, err)
		}
		go a.serve(a.httpServer, a.httpListener)
	}
	if a.adminListener, err = net.Listen("tcp", a.cfg.AdminAddr); err != nil {
		return fmt.Errorf("listen on MAILGATE_ADMIN_ADDR %s: %w", a.cfg.AdminAddr, err)
	}
	go a.serve(a.adminServer, a.adminListener)
	background, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stop = stop
	if err := a.riverUI.Start(background); err != nil {
		return fmt.Errorf("start river UI: %w", err)
	}
	if err := a.startInbound(); err != nil {
		return err
	}
	if a.runsWorkers() {
		a.countJobs(background)
		if err := a.river.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("start workers: %w", err)
		}
		go a.stranded.Run(background)
	}
	// Every role tags delivery jobs (the API on accept, workers when the
	// reconciler requeues), so every role shares its clocks.
	go a.fair.Run(background, a.store, 200*time.Millisecond, func(err error) {
		a.logger.Warn("sync fair-queuing clocks", "error", err)
	})
	if a.auth != nil {
		a.auth.WatchSIGHUP(background, func(format string, args ...any) { a.logger.Info(fmt.Sprintf(format, args...)) })
	}
	a.logger.Info("mailgate started", "role", a.role, "http", a.HTTPAddr(), "admin", a.AdminAddr(), "inbound", a.InboundAddr(), "workers", a.cfg.Workers)
	return nil
}

func (a *App) serve(srv *http.Server, l net.Listener) {
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.serveErr <- err
	}
}

// Errors reports a listener that failed while serving.
func (a *App) Errors() <-chan error { return a.serveErr }

// HTTPAddr is the public API's address, once started.
func (a *App) HTTPAddr() string {
	if a.httpListener == nil {
		return ""
	}
	return a.httpListener.Addr().String()
}

// AdminAddr is the admin listener's address, once started.
func (a *App) AdminAddr() string {
	if a.adminListener == nil {
		return ""
	}
	return a.adminListener.Addr().String()
}

// Store exposes the store for the CLI and tests in this package.
func (a *App) Store() *postgres.Store { return a.store }

// Drain marks the gateway not ready (/readyz answers 503) and keeps serving
// for delay, or until ctx ends, so load balancers and kube-proxy stop routing
// to it before its listeners close. Keep-alives are turned off meanwhile, so
// clients open their next connection to another replica. A worker-only
// process has no traffic to drain and returns at once.
func (a *App) Drain(ctx context.Context, delay time.Duration) {
	a.draining.Store(true)
	if a.httpServer == nil {
		return
	}
	a.httpServer.SetKeepAlivesEnabled(false)
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// Shutdown stops accepting requests, lets in-flight requests and deliveries
// finish within the grace period, then cancels what is left (River retries it).
func (a *App) Shutdown(ctx context.Context) error {
	a.draining.Store(true)
	ctx, cancel := context.WithTimeout(ctx, a.cfg.ShutdownGrace)
	defer cancel()
	if a.stop != nil {
		a.stop()
	}
	var errs []error
	if a.httpServer != nil && a.httpListener != nil {
		errs = append(errs, a.httpServer.Shutdown(ctx))
	}
	errs = append(errs, a.stopInbound(ctx))
	if a.runsWorkers() {
		// Deliveries get most of the grace to finish; the rest is for those
		// still running to be cancelled and record what they know (their
		// outcome is written detached from the cancel), so the process exits
		// within the grace.
		softCtx, softCancel := context.WithTimeout(ctx, a.cfg.ShutdownGrace-cancelShare(a.cfg.ShutdownGrace))
		err := a.river.Stop(softCtx)
		softCancel()
		if err != nil {
			errs = append(errs, a.river.StopAndCancel(ctx))
		}
	}
	// The workers are done: let the group committer finish what they handed it.
	a.store.Close()
	if a.relay != nil {
		errs = append(errs, a.relay.Close())
	}
	if a.adminListener != nil {
		errs = append(errs, a.adminServer.Shutdown(ctx))
	}
	a.pool.Close()
	return errors.Join(errs...)
}

// cancelShare is the part of the shutdown grace kept for cancelled
// deliveries to record their outcome: a fifth, between 1 and 5 seconds.
func cancelShare(grace time.Duration) time.Duration {
	return min(max(grace/5, time.Second), 5*time.Second, grace/2)
}

// Close releases the database pool of an App that was never started.
func (a *App) Close() { a.pool.Close() }

// ensureUUID parses a CLI UUID argument.
func ensureUUID(flagName, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, fmt.Errorf("--%s must be a UUID, got %q", flagName, s)
	}
	return id, nil
}

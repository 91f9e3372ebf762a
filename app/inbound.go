package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/mailgate/mailgate/adapters/httpapi"
	"github.com/mailgate/mailgate/adapters/inbound"
	"github.com/mailgate/mailgate/adapters/metrics"
	"github.com/mailgate/mailgate/adapters/postgres"
	"github.com/mailgate/mailgate/domain"
	"github.com/mailgate/mailgate/jobs"
)

// inboundMemory bounds the message data the listener holds at once.
const inboundMemory = 256 << 20

// The API finds these optional ports on the store it is given as Admin and
// Mailbox; without them their routes answer 404, so the build checks them.
var (
	_ httpapi.InboundAdminStore      = (*postgres.Store)(nil)
	_ httpapi.MailboxAttachmentStore = (*postgres.Store)(nil)
)

// inboundListener is the inbound SMTP listener of a process and its socket.
type inboundListener struct {
	server   *inbound.Listener
	listener net.Listener
	done     chan error
}

// runsWorkers reports whether this role runs River workers.
func (a *App) runsWorkers() bool { return a.role == RoleAll || a.role == RoleWorker }

// runsInbound reports whether this role runs the inbound listener: the
// inbound role always, all when a bounce or reply domain is configured
// (without one there is nothing to receive, and behaviour stays as before).
func (a *App) runsInbound() bool {
	return a.role == RoleInbound || (a.role == RoleAll && a.cfg.Inbound.Addr != "" && a.cfg.Inbound.Enabled())
}

// inboundMetrics is registered once per process, by whichever part needs it first.
func (a *App) inboundMetrics() *metrics.Inbound {
	if a.inboundObs == nil {
		a.inboundObs = metrics.NewInbound(a.metrics)
	}
	return a.inboundObs
}

// newInboundWorker processes what the listener stored; without inbound
// addresses every message is kept as unmatched.
func (a *App) newInboundWorker(addresses *domain.InboundAddresses) *jobs.InboundWorker {
	verifier := inbound.DKIMVerifier{LookupTXT: a.cfg.Inbound.lookupTXT}
	return jobs.NewInboundWorker(a.store, inbound.Parse, verifier.Verify, addresses, a.inboundMetrics(), a.logger)
}

// wireInbound builds the listener when this role runs one.
func (a *App) wireInbound() error {
	if !a.runsInbound() {
		return nil
	}
	c := a.cfg.Inbound
	if c.Addr == "" {
		return errors.New("MAILGATE_INBOUND_ADDR is required for the inbound role")
	}
	if !c.Enabled() {
		return errors.New("the inbound listener needs MAILGATE_BOUNCE_DOMAIN or MAILGATE_REPLY_DOMAIN: it accepts mail for those only")
	}
	var tlsConfig *tls.Config
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return fmt.Errorf("MAILGATE_INBOUND_TLS_CERT/KEY: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	a.inbound = &inboundListener{server: inbound.New(a.store, inbound.Options{
		Domains:         []string{c.BounceDomain, c.ReplyDomain},
		Hostname:        c.Hostname,
		MaxMessageBytes: c.MaxMessageBytes,
		MaxConnections:  c.MaxConnections,
		RatePerIP:       c.RatePerIP,
		// At most inboundMemory bytes of messages being received at once.
		MaxConcurrentData: int(max(1, inboundMemory/c.MaxMessageBytes)),
		Timeout:           c.Timeout,
		TLS:               tlsConfig,
		Observer:          a.inboundMetrics(),
		Logger:            a.logger,
	}), done: make(chan error, 1)}
	return nil
}

func (a *App) startInbound() error {
	if a.inbound == nil {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.Inbound.Addr)
	if err != nil {
		return fmt.Errorf("listen on MAILGATE_INBOUND_ADDR %s: %w", a.cfg.Inbound.Addr, err)
	}
	a.inbound.listener = ln
	go func() {
		err := a.inbound.server.Serve(ln)
		a.inbound.done <- err
		if err != nil {
			a.serveErr <- fmt.Errorf("inbound SMTP: %w", err)
		}
	}()
	return nil
}

// stopInbound stops accepting mail and lets open sessions finish within ctx.
func (a *App) stopInbound(ctx context.Context) error {
	if a.inbound == nil || a.inbound.listener == nil {
		return nil
	}
	err := a.inbound.server.Shutdown(ctx)
	<-a.inbound.done
	return err
}

// InboundAddr is the inbound SMTP listener's address, once started ("" when none).
func (a *App) InboundAddr() string {
	if a.inbound == nil || a.inbound.listener == nil {
		return ""
	}
	return a.inbound.listener.Addr().String()
}

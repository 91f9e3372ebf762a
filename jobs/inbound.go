package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/mailgate/mailgate/domain"
)

// QueueInbound processes what the inbound listener received.
const QueueInbound = "inbound"

// ProcessInboundArgs processes one received inbound message.
type ProcessInboundArgs struct {
	InboundID uuid.UUID `json:"inbound_id"`
}

// Kind implements river.JobArgs.
func (ProcessInboundArgs) Kind() string { return "process_inbound" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ProcessInboundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueInbound, MaxAttempts: 10}
}

// EnqueueInboundTx queues the processing of a received message inside tx,
// the transaction that stores it.
func (e *Enqueuer) EnqueueInboundTx(ctx context.Context, tx pgx.Tx, inboundID uuid.UUID) error {
	_, err := e.client.InsertTx(ctx, tx, ProcessInboundArgs{InboundID: inboundID}, nil)
	return err
}

// InboundStore is the persistence the inbound worker needs.
type InboundStore interface {
	LoadInbound(ctx context.Context, id uuid.UUID) (domain.InboundMail, string, error)
	MessageTenant(ctx context.Context, id uuid.UUID) (uuid.UUID, error)
	MessageByHeaderID(ctx context.Context, headerID string) (tenant, id uuid.UUID, err error)
	ApplyInbound(ctx context.Context, inboundID, tenant, messageID uuid.UUID, decide func(*domain.Message) domain.InboundOutcome) error
	MarkInbound(ctx context.Context, out domain.InboundOutcome) error
}

// InboundObserver counts processed inbound mail for metrics.
type InboundObserver interface {
	ObserveInboundOutcome(out domain.InboundOutcome, dsn *domain.DSNReport)
}

// InboundParseFunc reads a raw inbound message.
type InboundParseFunc func(raw []byte) (domain.ParsedInbound, error)

// DKIMVerifyFunc verifies a message's DKIM signatures and summarizes the result.
type DKIMVerifyFunc func(ctx context.Context, raw []byte) string

// InboundWorker turns received bounces, complaints and replies into their
// effects on the messages they name.
type InboundWorker struct {
	river.WorkerDefaults[ProcessInboundArgs]
	store     InboundStore
	parse     InboundParseFunc
	verify    DKIMVerifyFunc
	addresses *domain.InboundAddresses
	observer  InboundObserver
	logger    *slog.Logger
	now       func() time.Time
}

// NewInboundWorker returns the worker; addresses checks the tokens.
func NewInboundWorker(store InboundStore, parse InboundParseFunc, verify DKIMVerifyFunc, addresses *domain.InboundAddresses, observer InboundObserver, logger *slog.Logger) *InboundWorker {
	return &InboundWorker{store: store, parse: parse, verify: verify, addresses: addresses, observer: observer, logger: logger, now: time.Now}
}

// Timeout implements river.Worker: parsing is bounded by the message size,
// DKIM lookups by their own timeouts.
func (w *InboundWorker) Timeout(*river.Job[ProcessInboundArgs]) time.Duration { return 2 * time.Minute }

// tokens are the verified ids the envelope recipients name.
type tokens struct {
	bounce, reply uuid.UUID
	// forged counts addresses shaped like ours whose token didn't verify.
	forged int
}

func (w *InboundWorker) readTokens(addrs ...string) tokens {
	var t tokens
	if w.addresses == nil || w.addresses.Tokens == nil {
		return t
	}
	for _, a := range addrs {
		prefix, token, _, ok := domain.SplitTokenAddress(a)
		if !ok {
			continue
		}
		switch prefix {
		case w.addresses.BouncePrefix:
			if id, ok := w.addresses.Tokens.Verify(domain.PurposeBounce, token); ok {
				t.bounce = id
			} else {
				t.forged++
			}
		case w.addresses.ReplyPrefix:
			if id, ok := w.addresses.Tokens.Verify(domain.PurposeReply, token); ok {
				t.reply = id
			} else {
				t.forged++
			}
		}
	}
	return t
}

// Work implements river.Worker.
func (w *InboundWorker) Work(ctx context.Context, job *river.Job[ProcessInboundArgs]) error {
	id := job.Args.InboundID
	mail, status, err := w.store.LoadInbound(ctx, id)
	if errors.Is(err, domain.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if status != domain.InboundReceived {
		return nil
	}
	parsed, err := w.parse(mail.Raw)
	if err != nil {
		return w.finish(ctx, domain.Unmatched(id, domain.InboundUnknown, "unreadable: "+err.Error()), nil)
	}
	t := w.readTokens(mail.RcptTo...)
	var (
		target uuid.UUID
		decide func(*domain.Message) domain.InboundOutcome
		now    = w.now().UTC()
	)
	switch parsed.Kind {
	case domain.InboundBounce:
		target = t.bounce
		decide = func(msg *domain.Message) domain.InboundOutcome {
			out := domain.InboundOutcome{InboundID: id}
			domain.ApplyDSN(&out, msg, *parsed.DSN, now)
			return out
		}
	case domain.InboundComplaint:
		// Feedback loops often mail a fixed address; the report's
		// Original-Mail-From is then the return path, token and all.
		target = t.bounce
		if target == uuid.Nil {
			target = w.readTokens(parsed.Complaint.OriginalMailFrom).bounce
		}
		decide = func(msg *domain.Message) domain.InboundOutcome {
			out := domain.InboundOutcome{InboundID: id}
			domain.ApplyComplaint(&out, msg, *parsed.Complaint, now)
			return out
		}
	default:
		target = t.reply
		if target != uuid.Nil && w.verify != nil {
			parsed.Reply.DKIM = w.verify(ctx, mail.Raw)
		}
		decide = func(msg *domain.Message) domain.InboundOutcome {
			out := domain.InboundOutcome{InboundID: id}
			domain.ReceiveReply(&out, msg, *parsed.Reply, now)
			return out
		}
	}
	if target == uuid.Nil {
		reason := "no address token of the gateway"
		if t.forged > 0 {
			reason = "forged or unknown address token"
		}
		return w.finish(ctx, domain.Unmatched(id, parsed.Kind, reason), parsed.DSN)
	}
	tenant, err := w.store.MessageTenant(ctx, target)
	if errors.Is(err, domain.ErrNotFound) {
		return w.finish(ctx, domain.Unmatched(id, parsed.Kind, "the token names message "+target.String()+", which no longer exists"), parsed.DSN)
	}
	if err != nil {
		return err
	}
	if parsed.Kind == domain.InboundReply {
		target = w.threadParent(ctx, tenant, target, parsed.Reply.InReplyTo)
	}
	var out domain.InboundOutcome
	err = w.store.ApplyInbound(ctx, id, tenant, target, func(msg *domain.Message) domain.InboundOutcome {
		if msg == nil {
			out = domain.Unmatched(id, parsed.Kind, "the message it names no longer exists")
			return out
		}
		out = decide(msg)
		return out
	})
	if err != nil {
		return fmt.Errorf("apply inbound: %w", err)
	}
	w.observe(out, parsed.DSN)
	return nil
}

// threadParent is the message a reply answers: the one its In-Reply-To
// names when that is the same tenant's, else the one the token names.
func (w *InboundWorker) threadParent(ctx context.Context, tenant, tokenMessage uuid.UUID, inReplyTo string) uuid.UUID {
	if inReplyTo == "" {
		return tokenMessage
	}
	t, id, err := w.store.MessageByHeaderID(ctx, inReplyTo)
	if err != nil || t != tenant {
		return tokenMessage
	}
	return id
}

func (w *InboundWorker) finish(ctx context.Context, out domain.InboundOutcome, dsn *domain.DSNReport) error {
	if err := w.store.MarkInbound(ctx, out); err != nil {
		return err
	}
	w.logger.Info("inbound message kept for the operator", "inbound_id", out.InboundID, "kind", out.Kind, "reason", out.Detail)
	w.observe(out, dsn)
	return nil
}

func (w *InboundWorker) observe(out domain.InboundOutcome, dsn *domain.DSNReport) {
	if w.observer != nil {
		w.observer.ObserveInboundOutcome(out, dsn)
	}
}

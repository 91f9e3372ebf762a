// Package webhook delivers tenant events to the tenants' HTTP endpoints:
// one signed POST per attempt, classified as success, retryable failure or
// permanent rejection. Retry policy belongs to the caller. The HTTP client
// refuses to connect to the gateway's own networks, so a tenant cannot use
// a webhook to probe them.
package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/mailgate/mailgate/domain"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout          = 10 * time.Second
	DefaultUserAgent        = "Mailgate-Webhook/1"
	DefaultMaxResponseBytes = 64 << 10
)

// Headers sent with every delivery besides SignatureHeader. Receivers
// deduplicate on the event ID, which is the same on every retry.
const (
	EventIDHeader   = "Mailgate-Event-Id"
	WebhookIDHeader = "Mailgate-Webhook-Id"
)

// Errors in a domain.WebhookResult, wrapped with detail.
var (
	// ErrInvalidDelivery means the request itself is unusable; nothing was sent.
	ErrInvalidDelivery = errors.New("webhook: invalid delivery")
	// ErrRedirect means the endpoint answered 3xx. Redirects are not followed,
	// as the target could be an address the dialer guard is there to protect,
	// and the signed request was meant for the registered URL only.
	ErrRedirect = errors.New("webhook: endpoint redirected; redirects are not followed, register the final URL")
	// ErrUnexpectedStatus means the endpoint answered with a status other
	// than 2xx or 3xx.
	ErrUnexpectedStatus = errors.New("webhook: endpoint did not accept the event")
)

// Options configures a Sender. Zero fields take the defaults.
type Options struct {
	// Timeout bounds one attempt, from dialing to reading the response.
	Timeout time.Duration
	// AllowPrivateNetworks lets the dialer connect to loopback, private,
	// link-local and the other special-purpose addresses, for development
	// and tests. Cloud metadata addresses stay refused, in every form.
	AllowPrivateNetworks bool
	UserAgent            string
	// MaxResponseBytes is how much of the response body is read (and
	// discarded) so the connection can be reused; the rest is dropped with
	// the connection.
	MaxResponseBytes int64
}

// Sender posts deliveries. It is safe for concurrent use and keeps
// connections to endpoints open between deliveries.
type Sender struct {
	client           *http.Client
	timeout          time.Duration
	userAgent        string
	maxResponseBytes int64
	now              func() time.Time
}

// NewSender returns a Sender whose HTTP client never follows redirects,
// ignores proxy environment variables (a proxy would be dialed instead of
// the endpoint, bypassing the address check) and, unless
// AllowPrivateNetworks, refuses to connect to non-public addresses.
func NewSender(opts Options) *Sender {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.UserAgent == "" {
		opts.UserAgent = DefaultUserAgent
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	guard := dialGuard{allowPrivate: opts.AllowPrivateNetworks}
	dialer := &net.Dialer{
		KeepAlive: 30 * time.Second,
		Control:   guard.control,
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    opts.Timeout,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &Sender{
		client: &http.Client{
			Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		timeout:          opts.Timeout,
		userAgent:        opts.UserAgent,
		maxResponseBytes: opts.MaxResponseBytes,
		now:              time.Now,
	}
}

// CloseIdleConnections closes connections kept open for reuse, for shutdown.
func (s *Sender) CloseIdleConnections() {
	s.client.CloseIdleConnections()
}

// Send makes one signed POST of d.Body to d.URL and classifies the outcome;
// it does not retry. The signature timestamp is the time of this attempt.
func (s *Sender) Send(ctx context.Context, d domain.WebhookRequest) domain.WebhookResult {
	start := time.Now()
	res := s.send(ctx, d)
	res.Duration = time.Since(start)
	return res
}

func (s *Sender) send(ctx context.Context, d domain.WebhookRequest) domain.WebhookResult {
	u, err := checkDelivery(d)
	if err != nil {
		return domain.WebhookResult{Err: err, Permanent: true}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return domain.WebhookResult{Err: fmt.Errorf("%w: %w", ErrInvalidDelivery, err), Permanent: true}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.userAgent)
	req.Header.Set(EventIDHeader, d.EventID)
	req.Header.Set(WebhookIDHeader, d.WebhookID)
	req.Header.Set(SignatureHeader, signatureHeaderValue(d.Secrets, s.now().Unix(), d.Body))

	resp, err := s.client.Do(req)
	if err != nil {
		return s.requestFailure(ctx, u, err)
	}
	defer resp.Body.Close()
	// Reading what little the endpoint says lets the connection be reused;
	// an error here does not change the endpoint's answer.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, s.maxResponseBytes))
	return classifyResponse(resp)
}

// requestFailure turns an error from the HTTP client into a result. The
// client's own message quotes the whole URL, which may carry a tenant's
// token in its query, so only the host is named.
func (s *Sender) requestFailure(ctx context.Context, u *url.URL, err error) domain.WebhookResult {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	switch {
	case errors.Is(err, ErrForbiddenAddress):
		return domain.WebhookResult{Err: fmt.Errorf("webhook: POST to %s: %w", u.Host, err), Permanent: true}
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		return domain.WebhookResult{Err: fmt.Errorf("webhook: POST to %s: no answer within %s: %w", u.Host, s.timeout, err)}
	default:
		return domain.WebhookResult{Err: fmt.Errorf("webhook: POST to %s: %w", u.Host, err)}
	}
}

// classifyResponse maps the status code: 2xx succeeds, 3xx is a retryable
// failure, 4xx is permanent except for the codes that mean "not now", and
// everything else is retryable.
func classifyResponse(resp *http.Response) domain.WebhookResult {
	code := resp.StatusCode
	res := domain.WebhookResult{StatusCode: code}
	switch {
	case code >= 200 && code <= 299:
	case code >= 300 && code <= 399:
		res.Err = fmt.Errorf("%w (%d %s to %q)", ErrRedirect, code, http.StatusText(code), resp.Header.Get("Location"))
	case code >= 400 && code <= 499:
		res.Err = fmt.Errorf("%w: %d %s", ErrUnexpectedStatus, code, http.StatusText(code))
		res.Permanent = !retryable4xx(code)
	default:
		res.Err = fmt.Errorf("%w: %d %s", ErrUnexpectedStatus, code, http.StatusText(code))
	}
	return res
}

// retryable4xx are client errors that describe a passing state of the
// endpoint rather than a rejection of the payload.
func retryable4xx(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return false
}

// maxIDLength bounds the ID headers; IDs are UUIDs or similar.
const maxIDLength = 256

// checkDelivery rejects deliveries that cannot be sent correctly, before
// any connection is made.
func checkDelivery(d domain.WebhookRequest) (*url.URL, error) {
	u, err := parseEndpoint(d.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidDelivery, err)
	}
	if len(d.Secrets) == 0 || len(d.Secrets) > 2 {
		return nil, fmt.Errorf("%w: need one or two secrets, have %d", ErrInvalidDelivery, len(d.Secrets))
	}
	for i, secret := range d.Secrets {
		if len(secret) == 0 {
			return nil, fmt.Errorf("%w: secret %d is empty", ErrInvalidDelivery, i)
		}
	}
	if err := checkID(EventIDHeader, d.EventID); err != nil {
		return nil, err
	}
	if err := checkID(WebhookIDHeader, d.WebhookID); err != nil {
		return nil, err
	}
	return u, nil
}

// checkID requires a non-empty value of printable ASCII, which receivers
// can store and compare without decoding.
func checkID(header, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidDelivery, header)
	}
	if len(id) > maxIDLength {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalidDelivery, header, maxIDLength)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return fmt.Errorf("%w: %s contains a character other than printable ASCII", ErrInvalidDelivery, header)
		}
	}
	return nil
}

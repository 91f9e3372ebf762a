package app

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/domain"
)

// InboundConfig is the inbound side: the addresses outgoing mail carries so
// bounces and replies come back, and the SMTP listener that receives them.
type InboundConfig struct {
	// BounceDomain receives DSNs and feedback reports at VERP return paths
	// (MAILGATE_BOUNCE_DOMAIN; empty: the envelope sender stays the
	// sender's own address and nothing comes back).
	BounceDomain string
	// ReplyDomain receives replies at Reply-To addresses of tenants that
	// route them (MAILGATE_REPLY_DOMAIN).
	ReplyDomain  string
	BouncePrefix string
	ReplyPrefix  string
	// TokenKeys sign the address tokens; the first signs, all verify
	// (MAILGATE_VERP_KEYS, comma-separated).
	TokenKeys [][]byte
	// Addr is the listener's address (MAILGATE_INBOUND_ADDR).
	Addr string
	// Hostname is the name the listener greets with.
	Hostname string
	// TLSCert and TLSKey are PEM files offered with STARTTLS.
	TLSCert, TLSKey string
	MaxMessageBytes int64
	MaxConnections  int
	// RatePerIP is how many messages one sending IP may hand over a minute.
	RatePerIP int
	Timeout   time.Duration
	// Retention is how long processed and unmatched inbound messages, raw
	// bytes and all, are kept (MAILGATE_INBOUND_RETENTION).
	Retention time.Duration
	// lookupTXT resolves DKIM key records for reply verification (tests
	// set it; the system resolver when nil).
	lookupTXT func(ctx context.Context, name string) ([]string, error)
}

// Inbound listener defaults.
const (
	defaultInboundAddr     = ":2525"
	defaultInboundMaxBytes = 32 << 20
	defaultInboundConns    = 100
	defaultInboundRate     = 120
	defaultInboundTimeout  = time.Minute
)

// Enabled reports whether outgoing mail should carry inbound addresses.
func (c InboundConfig) Enabled() bool { return c.BounceDomain != "" || c.ReplyDomain != "" }

// addresses is the delivery worker's view: nil when nothing comes back.
func (c InboundConfig) addresses() (*domain.InboundAddresses, error) {
	if !c.Enabled() {
		return nil, nil
	}
	tokens, err := domain.NewAddressTokens(c.TokenKeys)
	if err != nil {
		return nil, fmt.Errorf("MAILGATE_VERP_KEYS: %w", err)
	}
	return &domain.InboundAddresses{Tokens: tokens, BounceDomain: c.BounceDomain, BouncePrefix: c.BouncePrefix,
		ReplyDomain: c.ReplyDomain, ReplyPrefix: c.ReplyPrefix}, nil
}

// loadInboundConfig reads the MAILGATE_BOUNCE_*, MAILGATE_REPLY_*,
// MAILGATE_VERP_KEYS and MAILGATE_INBOUND_* variables.
func loadInboundConfig(getenv func(string) string) (InboundConfig, error) {
	c := InboundConfig{
		BounceDomain:    asciiDomain(strings.ToLower(strings.TrimSpace(getenv("MAILGATE_BOUNCE_DOMAIN")))),
		ReplyDomain:     asciiDomain(strings.ToLower(strings.TrimSpace(getenv("MAILGATE_REPLY_DOMAIN")))),
		BouncePrefix:    or(getenv("MAILGATE_BOUNCE_PREFIX"), "bounce"),
		ReplyPrefix:     or(getenv("MAILGATE_REPLY_PREFIX"), "reply"),
		Addr:            or(getenv("MAILGATE_INBOUND_ADDR"), defaultInboundAddr),
		TLSCert:         getenv("MAILGATE_INBOUND_TLS_CERT"),
		TLSKey:          getenv("MAILGATE_INBOUND_TLS_KEY"),
		MaxMessageBytes: defaultInboundMaxBytes,
		MaxConnections:  defaultInboundConns,
		RatePerIP:       defaultInboundRate,
		Timeout:         defaultInboundTimeout,
		Retention:       domain.DefaultInboundRetention,
	}
	if c.BounceDomain != "" && c.BounceDomain == c.ReplyDomain {
		return c, fmt.Errorf("MAILGATE_BOUNCE_DOMAIN and MAILGATE_REPLY_DOMAIN must differ, both are %q", c.BounceDomain)
	}
	for _, d := range []struct{ name, value string }{{"MAILGATE_BOUNCE_DOMAIN", c.BounceDomain}, {"MAILGATE_REPLY_DOMAIN", c.ReplyDomain}} {
		if d.value == "" {
			continue
		}
		if _, err := domain.NormalizeDomain(d.name, d.value); err != nil {
			return c, fmt.Errorf("%s must be a fully qualified domain name, got %q", d.name, d.value)
		}
	}
	for _, p := range []struct{ name, value string }{{"MAILGATE_BOUNCE_PREFIX", c.BouncePrefix}, {"MAILGATE_REPLY_PREFIX", c.ReplyPrefix}} {
		if !validPrefix(p.value) {
			return c, fmt.Errorf("%s must be 1 to 16 letters, digits or hyphens, got %q", p.name, p.value)
		}
	}
	if v := getenv("MAILGATE_VERP_KEYS"); v != "" {
		for _, k := range strings.Split(v, ",") {
			c.TokenKeys = append(c.TokenKeys, []byte(strings.TrimSpace(k)))
		}
		if _, err := domain.NewAddressTokens(c.TokenKeys); err != nil {
			return c, fmt.Errorf("MAILGATE_VERP_KEYS: %w", err)
		}
	}
	if c.Enabled() && len(c.TokenKeys) == 0 {
		return c, fmt.Errorf("MAILGATE_VERP_KEYS is required with MAILGATE_BOUNCE_DOMAIN or MAILGATE_REPLY_DOMAIN (comma-separated keys of at least %d bytes; the first signs)", domain.MinTokenKeyBytes)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return c, fmt.Errorf("MAILGATE_INBOUND_TLS_CERT and MAILGATE_INBOUND_TLS_KEY go together")
	}
	c.Hostname = or(getenv("MAILGATE_INBOUND_HOSTNAME"), or(c.BounceDomain, "localhost"))
	ints := []struct {
		name     string
		dst      *int
		min, max int
	}{
		{"MAILGATE_INBOUND_MAX_CONNECTIONS", &c.MaxConnections, 1, 100000},
		{"MAILGATE_INBOUND_RATE_PER_IP", &c.RatePerIP, 1, 1000000},
	}
	for _, n := range ints {
		if v := getenv(n.name); v != "" {
			parsed, err := strconv.Atoi(v)
			if err != nil || parsed < n.min || parsed > n.max {
				return c, fmt.Errorf("%s must be a whole number from %d to %d, got %q", n.name, n.min, n.max, v)
			}
			*n.dst = parsed
		}
	}
	if v := getenv("MAILGATE_INBOUND_MAX_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 || n > 1<<30 {
			return c, fmt.Errorf("MAILGATE_INBOUND_MAX_BYTES must be from 1024 to 1073741824 bytes, got %q", v)
		}
		c.MaxMessageBytes = n
	}
	if v := getenv("MAILGATE_INBOUND_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("MAILGATE_INBOUND_TIMEOUT must be a positive duration such as 60s, got %q", v)
		}
		c.Timeout = d
	}
	if v := getenv("MAILGATE_INBOUND_RETENTION"); v != "" {
		d, err := parseRetention(v)
		if err != nil || d < time.Hour {
			return c, fmt.Errorf("MAILGATE_INBOUND_RETENTION must be a duration of at least an hour, in days (30d) or as 720h, got %q", v)
		}
		c.Retention = d
	}
	return c, nil
}

// parseRetention reads a retention given in whole days ("30d"), the unit
// operators think in, or as a Go duration ("720h").
func parseRetention(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("bad number of days %q", days)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

func validPrefix(p string) bool {
	if p == "" || len(p) > 16 {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

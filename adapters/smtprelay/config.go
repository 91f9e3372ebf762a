// Package smtprelay hands built messages to an SMTP relay (a smarthost), one
// transaction per call over a small pool of reused connections, turning every
// server reply into a per-recipient domain.RecipientReply. CaptureTransport,
// with the same Send method, writes messages to files instead, for development.
package smtprelay

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TLSMode says whether the transport upgrades a plain connection with STARTTLS.
type TLSMode int

// The STARTTLS modes. The zero value is opportunistic.
const (
	// TLSOpportunistic upgrades when the server offers STARTTLS and
	// continues in plain text when it does not.
	TLSOpportunistic TLSMode = iota
	// TLSRequired fails the delivery unless STARTTLS succeeds.
	TLSRequired
	// TLSNone never upgrades, even when offered.
	TLSNone
)

// String returns the mode as written in a relay URL's tls parameter.
func (m TLSMode) String() string {
	switch m {
	case TLSOpportunistic:
		return "opportunistic"
	case TLSRequired:
		return "required"
	case TLSNone:
		return "none"
	}
	return "TLSMode(" + strconv.Itoa(int(m)) + ")"
}

// Default ports and timeouts.
const (
	DefaultPort        = "25"
	DefaultImplicitTLS = "465"
	DefaultTimeout     = 30 * time.Second
	// DefaultDataTimeout is RFC 5321's recommended wait for the reply to the
	// final dot, where servers may scan the message before answering.
	DefaultDataTimeout = 10 * time.Minute
)

// Default limits of the connection pool.
const (
	// DefaultMaxIdleConns keeps a connection for each of a busy worker
	// pool's concurrent Sends, so none pays for a new session while the
	// load lasts; idle ones close after IdleTimeout.
	DefaultMaxIdleConns       = 64
	DefaultMaxConnLifetime    = 5 * time.Minute
	DefaultIdleTimeout        = 30 * time.Second
	DefaultCheckAfterIdle     = 2 * time.Second
	DefaultMaxMessagesPerConn = 100
)

// Config describes one relay.
type Config struct {
	Host string
	// Port defaults to 25, or 465 with ImplicitTLS.
	Port     string
	Username string
	Password string
	TLSMode  TLSMode
	// ImplicitTLS speaks TLS from the first byte (smtps); TLSMode is then ignored.
	ImplicitTLS bool
	// HeloName is the name sent with EHLO; the default is the machine's
	// host name when it is fully qualified, else "localhost".
	HeloName string
	// TLSConfig is cloned for every connection; ServerName defaults to Host.
	TLSConfig *tls.Config
	// Timeout bounds each step: connecting, the TLS handshake, each command
	// and writing each 64 KiB of the message; the RSET that checks a pooled
	// connection gets at most 5 seconds. Zero means DefaultTimeout.
	Timeout time.Duration
	// DataTimeout bounds the wait for the reply after the message was sent.
	// Zero means DefaultDataTimeout.
	DataTimeout time.Duration

	// MaxConns caps the connections open to the relay at once, idle and
	// busy together; a Send waits for one to be free, as long as its
	// context allows. It lets many deliveries prepare and record in
	// parallel while the relay sees no more sessions than it accepts from
	// one client (Postfix's smtpd_client_connection_count_limit is 50).
	// Zero or less means no cap.
	MaxConns int
	// MaxIdleConns is how many greeted connections are kept open between
	// Sends. Zero means DefaultMaxIdleConns; a negative value keeps none, so
	// every Send opens and closes its own connection.
	MaxIdleConns int
	// MaxConnLifetime is how long after it was opened a connection may still
	// be reused. Zero means DefaultMaxConnLifetime.
	MaxConnLifetime time.Duration
	// IdleTimeout closes a connection that has waited this long for its next
	// Send, well before relays drop idle clients (often without a word).
	// Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// CheckAfterIdle is how long a pooled connection may wait for its next
	// Send before it must answer NOOP to be reused; one used more recently
	// is reused without a round trip. Zero means DefaultCheckAfterIdle; a
	// negative value checks before every reuse.
	CheckAfterIdle time.Duration
	// MaxMessagesPerConn is how many Sends one connection serves before it is
	// closed. Zero means DefaultMaxMessagesPerConn.
	MaxMessagesPerConn int
}

// withDefaults fills in the zero fields that have a default.
func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.DataTimeout <= 0 {
		c.DataTimeout = DefaultDataTimeout
	}
	if c.MaxIdleConns == 0 {
		c.MaxIdleConns = DefaultMaxIdleConns
	}
	if c.MaxConnLifetime <= 0 {
		c.MaxConnLifetime = DefaultMaxConnLifetime
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.CheckAfterIdle == 0 {
		c.CheckAfterIdle = DefaultCheckAfterIdle
	}
	if c.MaxMessagesPerConn <= 0 {
		c.MaxMessagesPerConn = DefaultMaxMessagesPerConn
	}
	return c
}

// MaxTransactionTime is the longest one Send can take for a message of
// messageBytes to the given number of recipients when every step uses up
// its timeout: checking a pooled connection that then turns out lost,
// connecting anew with greeting, EHLO (and HELO), TLS and AUTH as
// configured, MAIL, each RCPT, DATA, writing the message in 64 KiB chunks,
// the final reply (DataTimeout), RSET and QUIT. A job that runs Send
// needs a longer timeout, or it may give up on a message the relay took.
func (c Config) MaxTransactionTime(recipients, messageBytes int) time.Duration {
	c = c.withDefaults()
	step := c.Timeout
	check := min(step, checkTimeout)
	// hello is EHLO, then HELO when the relay knows no EHLO.
	hello := 2 * step
	session := step + step + hello // connect, greeting, hello
	switch {
	case c.ImplicitTLS:
		session += step // handshake
	case c.TLSMode != TLSNone:
		session += step + step + hello // STARTTLS, handshake, hello again
	}
	if c.Username != "" {
		// LOGIN takes two exchanges; a failed one adds the cancelling "*".
		session += 3 * step
	}
	chunks := (messageBytes + writeChunk - 1) / writeChunk
	transaction := step + time.Duration(max(recipients, 0))*step + step + // MAIL, RCPT, DATA
		time.Duration(chunks+1)*step + c.DataTimeout // the message, its final dot, the reply
	// A pooled connection: NOOP, then a first try that waits out MAIL's
	// reply before Send dials anew. Afterwards RSET, then QUIT.
	return check + step + session + transaction + check + min(step, quitTimeout)
}

// Addr returns host:port with the scheme's default port filled in.
func (c Config) Addr() string {
	port := c.Port
	if port == "" {
		port = DefaultPort
		if c.ImplicitTLS {
			port = DefaultImplicitTLS
		}
	}
	return net.JoinHostPort(c.Host, port)
}

// String describes the relay for logs, without the password.
func (c Config) String() string {
	u := url.URL{Scheme: "smtp", Host: c.Addr()}
	if c.ImplicitTLS {
		u.Scheme = "smtps"
	} else if c.TLSMode != TLSOpportunistic {
		u.RawQuery = "tls=" + c.TLSMode.String()
	}
	if c.Username != "" {
		u.User = url.User(c.Username)
	}
	return u.String()
}

// ParseURL reads a relay URL: smtp://[user:pass@]host[:port][?tls=required|none]
// or smtps://[user:pass@]host[:port]. User name and password are
// percent-decoded, so an @ or : in them must be written %40 or %3A.
func ParseURL(raw string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return Config{}, fmt.Errorf("smtprelay: relay URL is malformed: %w", err)
	}
	var cfg Config
	switch u.Scheme {
	case "smtp":
	case "smtps":
		cfg.ImplicitTLS = true
	default:
		return Config{}, fmt.Errorf("smtprelay: relay URL scheme %q is not supported; use smtp:// (STARTTLS) or smtps:// (implicit TLS)", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return Config{}, errors.New("smtprelay: relay URL has no host; write it as smtp://host:port")
	}
	if u.Path != "" && u.Path != "/" || u.Fragment != "" {
		return Config{}, errors.New("smtprelay: relay URL must not have a path or fragment")
	}
	cfg.Host = u.Hostname()
	if cfg.Host == "" {
		return Config{}, errors.New("smtprelay: relay URL has no host")
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return Config{}, fmt.Errorf("smtprelay: relay URL port %q is not a number from 1 to 65535", port)
		}
		cfg.Port = port
	} else if strings.HasSuffix(u.Host, ":") {
		return Config{}, errors.New("smtprelay: relay URL has an empty port")
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
		if cfg.Username == "" {
			return Config{}, errors.New("smtprelay: relay URL has a password but no user name")
		}
	}
	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Config{}, fmt.Errorf("smtprelay: relay URL query: %w", err)
	}
	for key, values := range query {
		if len(values) != 1 {
			return Config{}, fmt.Errorf("smtprelay: relay URL parameter %q is given %d times", key, len(values))
		}
		switch value := values[0]; key {
		case "tls":
			if cfg.TLSMode, err = parseTLSMode(value, cfg.ImplicitTLS); err != nil {
				return Config{}, err
			}
		case "helo":
			if value == "" || strings.ContainsAny(value, " \t\r\n") {
				return Config{}, fmt.Errorf("smtprelay: relay URL helo %q must be a host name", value)
			}
			cfg.HeloName = value
		default:
			return Config{}, fmt.Errorf("smtprelay: relay URL parameter %q is unknown; supported are tls and helo", key)
		}
	}
	return cfg, nil
}

func parseTLSMode(value string, implicitTLS bool) (TLSMode, error) {
	switch strings.ToLower(value) {
	case "required":
		return TLSRequired, nil
	case "opportunistic":
		return TLSOpportunistic, nil
	case "none":
		if implicitTLS {
			return 0, errors.New("smtprelay: tls=none contradicts smtps://, which always uses TLS")
		}
		return TLSNone, nil
	}
	return 0, fmt.Errorf("smtprelay: relay URL tls=%q is unknown; use required, opportunistic or none", value)
}

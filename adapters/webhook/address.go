package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// MaxURLLength is the longest endpoint URL ValidateURL accepts.
const MaxURLLength = 2048

// Errors for endpoints the gateway will not call, wrapped with detail.
var (
	ErrInvalidURL = errors.New("webhook: invalid endpoint URL")
	// ErrForbiddenAddress means the endpoint is, or resolved to, an address
	// inside the gateway's own networks, which tenants must not reach.
	ErrForbiddenAddress = errors.New("webhook: endpoint address not allowed")
)

// ValidateURL checks an endpoint URL when a tenant registers it: an absolute
// https URL (http too when allowPrivate), with a host and no user info, at
// most MaxURLLength bytes, whose host, if an IP literal, is not in a refused
// range. Host names are not resolved here; the dialer checks every address
// actually connected to, which also covers names that resolve differently later.
func ValidateURL(raw string, allowPrivate bool) error {
	if len(raw) > MaxURLLength {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidURL, MaxURLLength)
	}
	u, err := parseEndpoint(raw)
	if err != nil {
		return err
	}
	if err := checkHost(u.Hostname(), allowPrivate); err != nil {
		return err
	}
	if u.Scheme != "https" && !allowPrivate {
		return fmt.Errorf("%w: scheme must be https", ErrInvalidURL)
	}
	return nil
}

// checkHost applies the address rules to an IP literal, and refuses names
// that are loopback by definition or that some resolvers read as addresses.
func checkHost(host string, allowPrivate bool) error {
	if addr, err := netip.ParseAddr(host); err == nil {
		if reason := refusedReason(addr, allowPrivate); reason != "" {
			return fmt.Errorf("%w: %w: %s is %s", ErrInvalidURL, ErrForbiddenAddress, addr, reason)
		}
		return nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if !allowPrivate && (name == "localhost" || strings.HasSuffix(name, ".localhost")) {
		return fmt.Errorf("%w: %w: %s is loopback", ErrInvalidURL, ErrForbiddenAddress, host)
	}
	if looksNumeric(name) {
		// Forms such as 2130706433, 127.1 or 0x7f.0.0.1 are not IP literals to
		// Go, but some resolvers turn them into addresses; no real top-level
		// domain is numeric, so refuse them rather than guess.
		return fmt.Errorf("%w: host %q looks like an IP address in a non-standard form", ErrInvalidURL, host)
	}
	return nil
}

// parseEndpoint applies the checks shared by registration and sending:
// absolute http or https URL with a host and no user info. Credentials in a
// URL would be sent as Basic authentication and end up in logs.
func parseEndpoint(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: scheme must be http or https, not %q", ErrInvalidURL, u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w: host is missing", ErrInvalidURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: user info is not allowed", ErrInvalidURL)
	}
	if u.Port() == "0" {
		return nil, fmt.Errorf("%w: port 0", ErrInvalidURL)
	}
	return u, nil
}

// looksNumeric reports whether the last label of a host name is made of
// digits or starts with 0x, the shapes of legacy IPv4 notations.
func looksNumeric(name string) bool {
	last := name[strings.LastIndexByte(name, '.')+1:]
	if strings.HasPrefix(last, "0x") {
		return true
	}
	if last == "" {
		return false
	}
	for i := 0; i < len(last); i++ {
		if last[i] < '0' || last[i] > '9' {
			return false
		}
	}
	return true
}

// addressRange is a block of addresses refused unless private networks are allowed.
type addressRange struct {
	prefix netip.Prefix
	reason string
}

// refusedRanges lists where a tenant's webhook must not reach: the gateway's
// host, its networks and its cloud provider's internal services.
var refusedRanges = []addressRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (this network)"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved or broadcast"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)"},
	{netip.MustParsePrefix("fc00::/7"), "unique local (private)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// metadataAddresses are cloud instance metadata services, which hand out
// credentials. They are refused even when private networks are allowed: no
// webhook, in development or not, has a reason to call them.
var metadataAddresses = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack, ...
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// Prefixes whose addresses embed an IPv4 address that a translator on the
// path would connect to.
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// refusedReason says why addr must not be connected to, or returns "" when
// it may be. IPv4 addresses written as IPv6 (mapped, NAT64, 6to4) are judged
// by the IPv4 address they carry.
func refusedReason(addr netip.Addr, allowPrivate bool) string {
	addr = addr.WithZone("").Unmap()
	switch {
	case nat64Prefix.Contains(addr):
		b := addr.As16()
		return refusedReason(netip.AddrFrom4([4]byte(b[12:16])), allowPrivate)
	case sixToFour.Contains(addr):
		b := addr.As16()
		return refusedReason(netip.AddrFrom4([4]byte(b[2:6])), allowPrivate)
	}
	for _, m := range metadataAddresses {
		if addr == m {
			return "a cloud metadata service"
		}
	}
	if allowPrivate {
		return ""
	}
	for _, r := range refusedRanges {
		if r.prefix.Contains(addr) {
			return r.reason
		}
	}
	return ""
}

// dialGuard is a net.Dialer Control function. It runs after name resolution,
// on the address about to be connected to, so a name that resolves to a
// public address at registration and a private one later (DNS rebinding)
// is still refused.
type dialGuard struct {
	allowPrivate bool
}

func (g dialGuard) control(network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" && network != "tcp" {
		return fmt.Errorf("%w: network %s", ErrForbiddenAddress, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dialed address %q", ErrForbiddenAddress, address)
	}
	if reason := refusedReason(ap.Addr(), g.allowPrivate); reason != "" {
		return fmt.Errorf("%w: %s is %s", ErrForbiddenAddress, ap.Addr(), reason)
	}
	return nil
}

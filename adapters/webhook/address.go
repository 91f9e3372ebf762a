package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
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

// registrationLookupTimeout bounds the name lookup ValidateURL makes, so a
// slow resolver delays a registration by at most this much.
const registrationLookupTimeout = 3 * time.Second

// lookupFunc resolves a host name to its addresses, as net.Resolver.LookupNetIP.
type lookupFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

// ValidateURL checks an endpoint URL when a tenant registers it: an absolute
// https URL (http too when allowPrivate), with a host and no user info, at
// most MaxURLLength bytes, whose host is not in a refused range: an IP
// literal is checked as written, a name by every address it resolves to now.
// A name that does not resolve is accepted; the dialer checks every address
// actually connected to, which also covers names that resolve differently later.
func ValidateURL(raw string, allowPrivate bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), registrationLookupTimeout)
	defer cancel()
	return validateURL(ctx, raw, allowPrivate, net.DefaultResolver.LookupNetIP)
}

func validateURL(ctx context.Context, raw string, allowPrivate bool, lookup lookupFunc) error {
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
	return checkResolved(ctx, u.Hostname(), allowPrivate, lookup)
}

// checkResolved refuses a host name that resolves to any refused address.
func checkResolved(ctx context.Context, host string, allowPrivate bool, lookup lookupFunc) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil // an IP literal, already checked
	}
	if name := strings.TrimSuffix(strings.ToLower(host), "."); name == "invalid" || strings.HasSuffix(name, ".invalid") {
		return nil // never resolves (RFC 6761), so there is nothing to ask a resolver
	}
	addrs, err := lookup(ctx, "ip", host)
	if err != nil {
		return nil // not resolvable now; the dialer judges what it resolves to later
	}
	for _, addr := range addrs {
		if reason := refusedReason(addr, allowPrivate); reason != "" {
			return fmt.Errorf("%w: %w: %s resolves to %s, which is %s", ErrInvalidURL, ErrForbiddenAddress, host, addr, reason)
		}
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

func refused(prefix, reason string) addressRange {
	return addressRange{netip.MustParsePrefix(prefix), reason}
}

// refusedRanges is every entry of the IANA IPv4 and IPv6 Special-Purpose
// Address Registries, plus multicast and the deprecated forms that still
// route somewhere. Even the entries IANA marks globally reachable (anycast
// services, NAT64, AMT, AS112) are refused: none is a tenant's web server,
// and several forward to an address the gateway cannot see. The most
// specific matching entry gives the reason.
var refusedRanges = []addressRange{ //nolint:gochecknoglobals // read-only: the IANA special-purpose table
	refused("0.0.0.0/8", "unspecified (this network)"),
	refused("10.0.0.0/8", "private (RFC 1918)"),
	refused("100.64.0.0/10", "shared address space (CGNAT)"),
	refused("127.0.0.0/8", "loopback"),
	refused("169.254.0.0/16", "link-local"),
	refused("172.16.0.0/12", "private (RFC 1918)"),
	refused("192.0.0.0/24", "IETF protocol assignments"),
	refused("192.0.0.0/29", "IPv4 service continuity (DS-Lite)"),
	refused("192.0.2.0/24", "documentation (TEST-NET-1)"),
	refused("192.31.196.0/24", "AS112 anycast"),
	refused("192.52.193.0/24", "AMT relay anycast"),
	refused("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
	refused("192.168.0.0/16", "private (RFC 1918)"),
	refused("192.175.48.0/24", "AS112 anycast"),
	refused("198.18.0.0/15", "benchmarking"),
	refused("198.51.100.0/24", "documentation (TEST-NET-2)"),
	refused("203.0.113.0/24", "documentation (TEST-NET-3)"),
	refused("224.0.0.0/4", "multicast"),
	refused("240.0.0.0/4", "reserved"),
	refused("255.255.255.255/32", "limited broadcast"),

	refused("::/128", "unspecified"),
	refused("::1/128", "loopback"),
	refused("::/96", "IPv4-compatible (deprecated)"),
	refused("::ffff:0:0/96", "IPv4-mapped"),
	refused("::ffff:0:0:0/96", "IPv4-translated (SIIT)"),
	refused("64:ff9b::/96", "NAT64"),
	refused("64:ff9b:1::/48", "local-use NAT64"),
	refused("100::/64", "discard-only"),
	refused("100:0:0:1::/64", "dummy prefix"),
	refused("2001::/23", "IETF protocol assignments"),
	refused("2001::/32", "Teredo"),
	refused("2001:db8::/32", "documentation"),
	refused("2002::/16", "6to4"),
	refused("2620:4f:8000::/48", "AS112 anycast"),
	refused("3fff::/20", "documentation"),
	refused("5f00::/16", "segment routing (SRv6) SIDs"),
	refused("fc00::/7", "unique local (private)"),
	refused("fe80::/10", "link-local"),
	refused("fec0::/10", "site-local (deprecated)"),
	refused("ff00::/8", "multicast"),
}

// globalUnicast is the only IPv6 space IANA hands out for public hosts;
// the rest is special-purpose or reserved, so it is refused whether or not
// a registry entry names it.
var globalUnicast = netip.MustParsePrefix("2000::/3") //nolint:gochecknoglobals // read-only: a fixed prefix

// metadataAddresses are cloud instance metadata services, which hand out
// credentials. They are refused even when private networks are allowed: no
// webhook, in development or not, has a reason to call them.
var metadataAddresses = []netip.Addr{ //nolint:gochecknoglobals // read-only: a fixed list
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack, ...
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// IPv6 forms that carry an IPv4 address a translator or tunnel on the path
// would connect to, and where in the 16 bytes it sits.
var embeddingForms = []struct { //nolint:gochecknoglobals // read-only: a fixed table
	prefix netip.Prefix
	name   string
	at     int
	xor    byte // Teredo stores its client address inverted
}{
	{netip.MustParsePrefix("::/96"), "IPv4-compatible", 12, 0},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated", 12, 0},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64", 12, 0},
	// Local-use NAT64 may use any prefix length up to /96 inside its /48;
	// the /96 layout is the one deployed, and the /48 is refused anyway.
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64", 12, 0},
	{netip.MustParsePrefix("2002::/16"), "6to4", 2, 0},
	{netip.MustParsePrefix("2001::/32"), "Teredo server", 4, 0},
	{netip.MustParsePrefix("2001::/32"), "Teredo client", 12, 0xff},
}

// refusedReason says why addr must not be connected to, or returns "" when
// it may be. IPv4-mapped addresses are judged as the IPv4 address they are;
// other forms embedding an IPv4 address (NAT64, 6to4, Teredo, SIIT) are also
// judged by the address they carry, so a refused IPv4 address is refused in
// every disguise, even when private networks are allowed.
func refusedReason(addr netip.Addr, allowPrivate bool) string {
	addr = addr.WithZone("").Unmap()
	for _, m := range metadataAddresses {
		if addr == m {
			return "a cloud metadata service"
		}
	}
	for _, e := range embeddedIPv4(addr) {
		if reason := refusedReason(e.inner, allowPrivate); reason != "" {
			return e.form + " form of " + e.inner.String() + ", which is " + reason
		}
	}
	if allowPrivate {
		return ""
	}
	best := -1
	for i, r := range refusedRanges {
		if r.prefix.Contains(addr) && (best < 0 || r.prefix.Bits() > refusedRanges[best].prefix.Bits()) {
			best = i
		}
	}
	if best >= 0 {
		return refusedRanges[best].reason
	}
	if addr.Is6() && !globalUnicast.Contains(addr) {
		return "outside IPv6 global unicast (2000::/3)"
	}
	return ""
}

type embedded struct {
	form  string
	inner netip.Addr
}

// embeddedIPv4 returns the IPv4 addresses an IPv6 address carries. An inner
// address in 0.0.0.0/8 names no host (it is how ::1 reads as IPv4-compatible)
// and is left to the registry.
func embeddedIPv4(addr netip.Addr) []embedded {
	if !addr.Is6() {
		return nil
	}
	b := addr.As16()
	var out []embedded
	for _, f := range embeddingForms {
		if !f.prefix.Contains(addr) {
			continue
		}
		v4 := [4]byte(b[f.at : f.at+4])
		for i := range v4 {
			v4[i] ^= f.xor
		}
		if v4[0] != 0 {
			out = append(out, embedded{f.name, netip.AddrFrom4(v4)})
		}
	}
	return out
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

package webhook

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// Every range of the IANA IPv4 and IPv6 Special-Purpose Address Registries
// is refused, at its edges and in its disguises; public addresses are not.
func TestRefusedReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr string
		// wantInReason is part of the reason without private networks; ""
		// means the address is allowed.
		wantInReason string
		// okPrivate: allowed when private networks are.
		okPrivate bool
	}{
		// Public, allowed either way.
		{addr: "1.1.1.1", okPrivate: true},
		{addr: "8.8.8.8", okPrivate: true},
		{addr: "93.184.215.14", okPrivate: true},
		{addr: "192.0.1.255", okPrivate: true},    // between 192.0.0.0/24 and 192.0.2.0/24
		{addr: "198.17.255.255", okPrivate: true}, // just below 198.18.0.0/15
		{addr: "198.20.0.0", okPrivate: true},     // just above it
		{addr: "223.255.255.255", okPrivate: true},
		{addr: "2606:4700:4700::1111", okPrivate: true},
		{addr: "2a00:1450:4001:80b::200e", okPrivate: true},
		{addr: "2001:200::1", okPrivate: true},    // just above 2001::/23
		{addr: "2003::1", okPrivate: true},        // just above 2002::/16
		{addr: "::ffff:1.1.1.1", okPrivate: true}, // mapped public is the public address

		// The five.
		{addr: "64:ff9b:1::a00:1", wantInReason: "10.0.0.1", okPrivate: true},
		{addr: "::ffff:0:7f00:1", wantInReason: "127.0.0.1", okPrivate: true},
		{addr: "198.18.0.1", wantInReason: "benchmarking", okPrivate: true},
		{addr: "192.0.0.1", wantInReason: "DS-Lite", okPrivate: true}, // 192.0.0.0/29 inside 192.0.0.0/24
		{addr: "2001:0:4136:e378:8000:63bf:3fff:fdd2", wantInReason: "Teredo", okPrivate: true},

		// IPv4 registry.
		{addr: "0.0.0.0", wantInReason: "unspecified", okPrivate: true},
		{addr: "0.255.255.255", wantInReason: "unspecified", okPrivate: true},
		{addr: "10.0.0.1", wantInReason: "RFC 1918", okPrivate: true},
		{addr: "10.255.255.255", wantInReason: "RFC 1918", okPrivate: true},
		{addr: "100.64.0.1", wantInReason: "CGNAT", okPrivate: true},
		{addr: "100.127.255.254", wantInReason: "CGNAT", okPrivate: true},
		{addr: "127.0.0.1", wantInReason: "loopback", okPrivate: true},
		{addr: "127.8.9.10", wantInReason: "loopback", okPrivate: true},
		{addr: "169.254.1.1", wantInReason: "link-local", okPrivate: true},
		{addr: "172.16.0.1", wantInReason: "RFC 1918", okPrivate: true},
		{addr: "172.31.255.255", wantInReason: "RFC 1918", okPrivate: true},
		{addr: "192.0.0.8", wantInReason: "IETF protocol assignments", okPrivate: true},
		{addr: "192.0.0.170", wantInReason: "IETF protocol assignments", okPrivate: true},
		{addr: "192.0.0.2", wantInReason: "DS-Lite", okPrivate: true},
		{addr: "192.0.2.1", wantInReason: "documentation", okPrivate: true},
		{addr: "192.31.196.1", wantInReason: "AS112", okPrivate: true},
		{addr: "192.52.193.1", wantInReason: "AMT", okPrivate: true},
		{addr: "192.88.99.1", wantInReason: "6to4 relay", okPrivate: true},
		{addr: "192.168.0.1", wantInReason: "RFC 1918", okPrivate: true},
		{addr: "192.175.48.1", wantInReason: "AS112", okPrivate: true},
		{addr: "198.19.255.255", wantInReason: "benchmarking", okPrivate: true},
		{addr: "198.51.100.7", wantInReason: "documentation", okPrivate: true},
		{addr: "203.0.113.10", wantInReason: "documentation", okPrivate: true},
		{addr: "224.0.0.1", wantInReason: "multicast", okPrivate: true},
		{addr: "239.255.255.250", wantInReason: "multicast", okPrivate: true},
		{addr: "240.0.0.1", wantInReason: "reserved", okPrivate: true},
		{addr: "255.255.255.254", wantInReason: "reserved", okPrivate: true},
		{addr: "255.255.255.255", wantInReason: "broadcast", okPrivate: true},

		// IPv6 registry.
		{addr: "::", wantInReason: "unspecified", okPrivate: true},
		{addr: "::1", wantInReason: "loopback", okPrivate: true},
		{addr: "::a00:1", wantInReason: "10.0.0.1", okPrivate: true}, // IPv4-compatible
		{addr: "::ffff:10.0.0.1", wantInReason: "RFC 1918", okPrivate: true},
		{addr: "::ffff:127.0.0.1", wantInReason: "loopback", okPrivate: true},
		{addr: "::ffff:0:a00:1", wantInReason: "IPv4-translated form of 10.0.0.1", okPrivate: true},
		{addr: "64:ff9b::a00:1", wantInReason: "NAT64 form of 10.0.0.1", okPrivate: true},
		{addr: "64:ff9b::101:101", wantInReason: "NAT64", okPrivate: true}, // NAT64 of public 1.1.1.1
		{addr: "64:ff9b:1::101:101", wantInReason: "local-use NAT64", okPrivate: true},
		{addr: "64:ff9b:1:ffff::1", wantInReason: "local-use NAT64", okPrivate: true},
		{addr: "100::1", wantInReason: "discard-only", okPrivate: true},
		{addr: "100:0:0:1::1", wantInReason: "dummy prefix", okPrivate: true},
		{addr: "2001::1", wantInReason: "Teredo", okPrivate: true},
		{addr: "2001:0:101:101::feff:fefe", wantInReason: "Teredo", okPrivate: true}, // public server and client
		{addr: "2001:1::1", wantInReason: "IETF protocol assignments", okPrivate: true},
		{addr: "2001:3::1", wantInReason: "IETF protocol assignments", okPrivate: true},
		{addr: "2001:1ff:ffff::1", wantInReason: "IETF protocol assignments", okPrivate: true},
		{addr: "2001:db8::10", wantInReason: "documentation", okPrivate: true},
		{addr: "2002:7f00:1::1", wantInReason: "6to4 form of 127.0.0.1", okPrivate: true},
		{addr: "2002:101:101::1", wantInReason: "6to4", okPrivate: true},
		{addr: "2620:4f:8000::1", wantInReason: "AS112", okPrivate: true},
		{addr: "3fff::1", wantInReason: "documentation", okPrivate: true},
		{addr: "5f00::1", wantInReason: "SRv6", okPrivate: true},
		{addr: "fc00::1", wantInReason: "unique local", okPrivate: true},
		{addr: "fd12:3456::1", wantInReason: "unique local", okPrivate: true},
		{addr: "fe80::1%eth0", wantInReason: "link-local", okPrivate: true},
		{addr: "fec0::1", wantInReason: "site-local", okPrivate: true},
		{addr: "ff02::1", wantInReason: "multicast", okPrivate: true},
		{addr: "4000::1", wantInReason: "global unicast", okPrivate: true}, // reserved by IETF
		{addr: "1::1", wantInReason: "global unicast", okPrivate: true},

		// Metadata services stay refused when private networks are allowed,
		// in every form that reaches them.
		{addr: "169.254.169.254", wantInReason: "metadata"},
		{addr: "::ffff:169.254.169.254", wantInReason: "metadata"},
		{addr: "::ffff:0:a9fe:a9fe", wantInReason: "IPv4-translated form of 169.254.169.254, which is a cloud metadata"},
		{addr: "64:ff9b::a9fe:a9fe", wantInReason: "NAT64 form of 169.254.169.254, which is a cloud metadata"},
		{addr: "64:ff9b:1::a9fe:a9fe", wantInReason: "metadata"},
		{addr: "2002:a9fe:a9fe::1", wantInReason: "6to4 form of 169.254.169.254"},
		{addr: "2001:0:a9fe:a9fe::", wantInReason: "Teredo server form of 169.254.169.254"},
		{addr: "2001:0:101:101::5601:5601", wantInReason: "Teredo client form of 169.254.169.254"},
		{addr: "fd00:ec2::254", wantInReason: "metadata"},
		{addr: "100.100.100.200", wantInReason: "metadata"},
	} {
		addr := netip.MustParseAddr(tc.addr)
		reason := refusedReason(addr, false)
		if tc.wantInReason == "" && reason != "" {
			t.Errorf("%s is refused (%s), want allowed", tc.addr, reason)
		}
		if tc.wantInReason != "" && !strings.Contains(reason, tc.wantInReason) {
			t.Errorf("%s: reason %q, want it to mention %q", tc.addr, reason, tc.wantInReason)
		}
		if private := refusedReason(addr, true); tc.okPrivate != (private == "") {
			t.Errorf("%s with private networks allowed: reason %q, want allowed %v", tc.addr, private, tc.okPrivate)
		}
		// The dialer guard applies the same decision to the address connected to.
		err := dialGuard{}.control("tcp", netip.AddrPortFrom(addr, 443).String(), nil)
		if (err == nil) != (reason == "") || (err != nil && !errors.Is(err, ErrForbiddenAddress)) {
			t.Errorf("control(%s) = %v, want refused %v", tc.addr, err, reason != "")
		}
	}
}

// The dialer guard's decisions, checked on address strings only; nothing is dialed.
func TestDialGuard(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		address   string
		okPublic  bool
		okPrivate bool
	}{
		{address: "1.1.1.1:443", okPublic: true, okPrivate: true},
		{address: "[2606:4700:4700::1111]:443", okPublic: true, okPrivate: true},
		{address: "127.0.0.1:80", okPrivate: true},
		{address: "[::1]:80", okPrivate: true},
		{address: "[fe80::1%eth0]:80", okPrivate: true},
		{address: "[64:ff9b:1::a00:1]:443", okPrivate: true},
		{address: "[::ffff:0:7f00:1]:443", okPrivate: true},
		{address: "198.18.0.1:443", okPrivate: true},
		{address: "192.0.0.1:443", okPrivate: true},
		{address: "[2001:0:4136:e378:8000:63bf:3fff:fdd2]:443", okPrivate: true},
		{address: "169.254.169.254:80"},
		{address: "[64:ff9b::a9fe:a9fe]:80"},
		{address: "not-an-address:80"},
	} {
		for _, allowPrivate := range []bool{false, true} {
			ok := tc.okPublic
			if allowPrivate {
				ok = tc.okPrivate
			}
			err := dialGuard{allowPrivate: allowPrivate}.control("tcp", tc.address, nil)
			if ok != (err == nil) {
				t.Errorf("control(%s, allowPrivate %v) = %v, want ok %v", tc.address, allowPrivate, err, ok)
				continue
			}
			if err != nil && !errors.Is(err, ErrForbiddenAddress) {
				t.Errorf("control(%s) = %v, want ErrForbiddenAddress", tc.address, err)
			}
		}
	}
	if err := (dialGuard{allowPrivate: true}).control("udp", "1.1.1.1:53", nil); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("control(udp) = %v, want ErrForbiddenAddress", err)
	}
}

// At registration a host name is judged by every address it resolves to; a
// name that does not resolve is left to the dialer.
func TestValidateURLChecksResolvedNames(t *testing.T) {
	t.Parallel()
	zone := map[string][]string{
		"public.example":   {"1.1.1.1", "2606:4700:4700::1111"},
		"mixed.example":    {"1.1.1.1", "10.0.0.1"},
		"nat64.example":    {"64:ff9b:1::a00:1"},
		"teredo.example":   {"2001:0:4136:e378:8000:63bf:3fff:fdd2"},
		"bench.example":    {"198.18.0.1"},
		"metadata.example": {"169.254.169.254"},
	}
	lookup := func(_ context.Context, network, host string) ([]netip.Addr, error) {
		if network != "ip" {
			t.Errorf("lookup network %q, want ip", network)
		}
		names, ok := zone[host]
		if !ok {
			return nil, errors.New("no such host")
		}
		var out []netip.Addr
		for _, n := range names {
			out = append(out, netip.MustParseAddr(n))
		}
		return out, nil
	}
	for _, tc := range []struct {
		host                string
		okPublic, okPrivate bool
	}{
		{host: "public.example", okPublic: true, okPrivate: true},
		{host: "unknown.example", okPublic: true, okPrivate: true},
		{host: "mixed.example", okPrivate: true},
		{host: "nat64.example", okPrivate: true},
		{host: "teredo.example", okPrivate: true},
		{host: "bench.example", okPrivate: true},
		{host: "metadata.example"},
	} {
		for _, allowPrivate := range []bool{false, true} {
			ok := tc.okPublic
			if allowPrivate {
				ok = tc.okPrivate
			}
			err := validateURL(context.Background(), "https://"+tc.host+"/hook", allowPrivate, lookup)
			if ok != (err == nil) {
				t.Errorf("validateURL(%s, allowPrivate %v) = %v, want ok %v", tc.host, allowPrivate, err, ok)
				continue
			}
			if err != nil && (!errors.Is(err, ErrInvalidURL) || !errors.Is(err, ErrForbiddenAddress)) {
				t.Errorf("validateURL(%s) = %v, want ErrInvalidURL and ErrForbiddenAddress", tc.host, err)
			}
		}
	}
	// IP literals and .invalid names are never looked up.
	never := func(_ context.Context, _, host string) ([]netip.Addr, error) {
		t.Errorf("looked up %s", host)
		return nil, errors.New("no")
	}
	for _, raw := range []string{"https://1.1.1.1/", "https://[2606:4700:4700::1111]/", "https://hooks.example.invalid/", "https://invalid./"} {
		if err := validateURL(context.Background(), raw, false, never); err != nil {
			t.Errorf("validateURL(%s) = %v", raw, err)
		}
	}
}

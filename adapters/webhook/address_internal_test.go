package webhook

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// The dialer guard's decisions, checked on address strings only; nothing is dialed.
func TestDialGuard(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		address      string
		okPublic     bool
		okPrivate    bool
		wantInReason string
	}{
		{address: "203.0.113.10:443", okPublic: true, okPrivate: true},
		{address: "[2001:db8::10]:443", okPublic: true, okPrivate: true},
		{address: "127.0.0.1:80", okPrivate: true},
		{address: "127.8.9.10:80", okPrivate: true},
		{address: "[::1]:80", okPrivate: true},
		{address: "10.1.2.3:443", okPrivate: true},
		{address: "172.31.255.255:443", okPrivate: true},
		{address: "192.168.0.1:443", okPrivate: true},
		{address: "100.64.0.1:443", okPrivate: true},
		{address: "100.127.255.254:443", okPrivate: true},
		{address: "169.254.1.1:80", okPrivate: true},
		{address: "[fe80::1%eth0]:80", okPrivate: true},
		{address: "[fc00::1]:80", okPrivate: true},
		{address: "[fd00::1]:80", okPrivate: true},
		{address: "0.0.0.0:80", okPrivate: true},
		{address: "[::]:80", okPrivate: true},
		{address: "224.0.0.1:80", okPrivate: true},
		{address: "[ff02::1]:80", okPrivate: true},
		{address: "255.255.255.255:80", okPrivate: true},
		{address: "[::ffff:10.0.0.1]:80", okPrivate: true},
		{address: "[64:ff9b::a00:1]:80", okPrivate: true},                     // NAT64 of 10.0.0.1
		{address: "[2002:7f00:1::1]:80", okPrivate: true},                     // 6to4 of 127.0.0.1
		{address: "[64:ff9b::cb00:710a]:80", okPublic: true, okPrivate: true}, // NAT64 of 203.0.113.10
		{address: "169.254.169.254:80", wantInReason: "metadata"},
		{address: "[::ffff:169.254.169.254]:80", wantInReason: "metadata"},
		{address: "[fd00:ec2::254]:80", wantInReason: "metadata"},
		{address: "100.100.100.200:80", wantInReason: "metadata"},
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
			if tc.wantInReason != "" && err != nil {
				if reason := refusedReason(netip.MustParseAddrPort(tc.address).Addr(), allowPrivate); !strings.Contains(reason, tc.wantInReason) {
					t.Errorf("reason for %s = %q, want it to mention %q", tc.address, reason, tc.wantInReason)
				}
			}
		}
	}
	if err := (dialGuard{allowPrivate: true}).control("udp", "203.0.113.10:53", nil); !errors.Is(err, ErrForbiddenAddress) {
		t.Errorf("control(udp) = %v, want ErrForbiddenAddress", err)
	}
}

package webhook_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/adapters/webhook"
)

// Names here end in .invalid, which ValidateURL never looks up, so nothing
// leaves the machine; name resolution is tested with a stand-in lookup inside the package.
func TestValidateURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		url  string
		// okPublic and okPrivate are the expected outcomes with allowPrivate
		// false and true.
		okPublic, okPrivate bool
		forbidden           bool // refusals wrap ErrForbiddenAddress
	}{
		{name: "HTTPS", url: "https://hooks.example.invalid/mailgate?token=x", okPublic: true, okPrivate: true},
		{name: "HTTPSPort", url: "https://hooks.example.invalid:8443/in", okPublic: true, okPrivate: true},
		{name: "PublicIPv4", url: "https://1.1.1.1/hook", okPublic: true, okPrivate: true},
		{name: "PublicIPv6", url: "https://[2606:4700:4700::1111]/hook", okPublic: true, okPrivate: true},
		{name: "HTTP", url: "http://hooks.example.invalid/", okPrivate: true},
		{name: "UserInfo", url: "https://user:pw@hooks.example.invalid/"},
		{name: "UserOnly", url: "https://user@hooks.example.invalid/"},
		{name: "FTP", url: "ftp://hooks.example.invalid/"},
		{name: "NoScheme", url: "hooks.example.invalid/hook"},
		{name: "Relative", url: "/hook"},
		{name: "NoHost", url: "https:///hook"},
		{name: "Opaque", url: "https:hooks.example.invalid"},
		{name: "PortOnly", url: "https://:443/"},
		{name: "PortZero", url: "https://hooks.example.invalid:0/"},
		{name: "TooLong", url: "https://hooks.example.invalid/" + strings.Repeat("a", webhook.MaxURLLength)},
		{name: "Private10", url: "https://10.0.0.1/", okPrivate: true, forbidden: true},
		{name: "Private192", url: "https://192.168.1.5/", okPrivate: true, forbidden: true},
		{name: "Private172", url: "https://172.16.0.1/", okPrivate: true, forbidden: true},
		{name: "CGNAT", url: "https://100.64.0.1/", okPrivate: true, forbidden: true},
		{name: "Loopback", url: "https://127.0.0.1/", okPrivate: true, forbidden: true},
		{name: "LoopbackIPv6", url: "https://[::1]/", okPrivate: true, forbidden: true},
		{name: "MappedLoopback", url: "https://[::ffff:127.0.0.1]/", okPrivate: true, forbidden: true},
		{name: "ULA", url: "https://[fd12:3456::1]/", okPrivate: true, forbidden: true},
		{name: "LinkLocalIPv6", url: "https://[fe80::1%25eth0]/", okPrivate: true, forbidden: true},
		{name: "Unspecified", url: "https://0.0.0.0/", okPrivate: true, forbidden: true},
		{name: "Multicast", url: "https://224.0.0.1/", okPrivate: true, forbidden: true},
		{name: "Localhost", url: "https://localhost:8080/", okPrivate: true, forbidden: true},
		{name: "SubLocalhost", url: "https://app.localhost./", okPrivate: true, forbidden: true},
		{name: "Metadata", url: "http://169.254.169.254/latest/meta-data/", forbidden: true},
		{name: "MetadataHTTPS", url: "https://169.254.169.254/", forbidden: true},
		{name: "MetadataIPv6", url: "https://[fd00:ec2::254]/", forbidden: true},
		// The examples: local-use NAT64 of 10.0.0.1, IPv4-translated
		// 127.0.0.1, benchmarking, IETF protocol assignments, Teredo.
		{name: "LocalNAT64", url: "https://[64:ff9b:1::a00:1]/", okPrivate: true, forbidden: true},
		{name: "TranslatedLoopback", url: "https://[::ffff:0:7f00:1]/", okPrivate: true, forbidden: true},
		{name: "Benchmarking", url: "https://198.18.0.1/", okPrivate: true, forbidden: true},
		{name: "ProtocolAssignments", url: "https://192.0.0.1/", okPrivate: true, forbidden: true},
		{name: "Teredo", url: "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", okPrivate: true, forbidden: true},
		{name: "Documentation", url: "https://203.0.113.10/", okPrivate: true, forbidden: true},
		{name: "DecimalIPv4", url: "https://2130706433/"},
		{name: "ShortIPv4", url: "https://127.1/"},
		{name: "HexIPv4", url: "https://0x7f.0.0.1/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, allowPrivate := range []bool{false, true} {
				ok := tc.okPublic
				if allowPrivate {
					ok = tc.okPrivate
				}
				err := webhook.ValidateURL(tc.url, allowPrivate)
				if ok != (err == nil) {
					t.Errorf("ValidateURL(%q, %v) = %v, want ok %v", tc.url, allowPrivate, err, ok)
					continue
				}
				if err == nil {
					continue
				}
				if !errors.Is(err, webhook.ErrInvalidURL) {
					t.Errorf("ValidateURL(%q, %v) = %v, want ErrInvalidURL", tc.url, allowPrivate, err)
				}
				if tc.forbidden && !errors.Is(err, webhook.ErrForbiddenAddress) {
					t.Errorf("ValidateURL(%q, %v) = %v, want ErrForbiddenAddress", tc.url, allowPrivate, err)
				}
			}
		})
	}
}

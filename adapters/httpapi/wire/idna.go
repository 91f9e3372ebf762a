package wire

import (
	"strings"

	"golang.org/x/net/idna"

	"github.com/mailgate/mailgate/domain"
)

// ASCIIDomain converts an internationalized domain to its ASCII (punycode)
// form with UTS #46 mapping, so BÜCHER.example and xn--bcher-kva.example
// compare equal. Input it can't convert is returned as is, for the domain
// rules to refuse with a proper message.
func ASCIIDomain(d string) string {
	if domain.IsASCII(d) {
		return d
	}
	trailingDot := strings.HasSuffix(d, ".")
	ascii, err := idna.Lookup.ToASCII(strings.TrimSuffix(d, "."))
	if err != nil {
		return d
	}
	if trailingDot {
		ascii += "."
	}
	return ascii
}

// ASCIIAddress applies ASCIIDomain to the part after the last @.
func ASCIIAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || domain.IsASCII(addr[at+1:]) {
		return addr
	}
	return addr[:at+1] + ASCIIDomain(addr[at+1:])
}

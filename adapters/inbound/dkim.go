package inbound

import (
	"bytes"
	"context"
	"net"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// maxDKIMSignatures bounds the signatures checked per message: each costs
// a DNS lookup and a signature verification.
const maxDKIMSignatures = 5

// DKIMVerifier checks the DKIM signatures of received replies (go-msgauth).
type DKIMVerifier struct {
	// LookupTXT resolves the selector's key record; the system resolver when nil.
	LookupTXT func(ctx context.Context, name string) ([]string, error)
}

// Verify summarizes every signature's result: "pass d=example.com",
// "fail d=example.com (reason)", or "none" without a signature.
func (v DKIMVerifier) Verify(ctx context.Context, raw []byte) string {
	lookup := v.LookupTXT
	if lookup == nil {
		lookup = net.DefaultResolver.LookupTXT
	}
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{
		MaxVerifications: maxDKIMSignatures,
		LookupTXT:        func(name string) ([]string, error) { return lookup(ctx, name) },
	})
	if err != nil && len(verifications) == 0 {
		return "temperror (" + oneLine(err.Error()) + ")"
	}
	if len(verifications) == 0 {
		return "none"
	}
	var results []string
	for _, ver := range verifications {
		switch {
		case ver.Err == nil:
			results = append(results, "pass d="+ver.Domain)
		case dkim.IsTempFail(ver.Err):
			results = append(results, "temperror d="+ver.Domain+" ("+oneLine(ver.Err.Error())+")")
		default:
			results = append(results, "fail d="+ver.Domain+" ("+oneLine(ver.Err.Error())+")")
		}
	}
	return strings.Join(results, "; ")
}

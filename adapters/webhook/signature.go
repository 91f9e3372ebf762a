package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the timestamp and one HMAC per active secret.
const SignatureHeader = "Mailgate-Signature"

// DefaultTolerance is how far a signature's timestamp may be from the
// receiver's clock when Verify is given no tolerance of its own.
const DefaultTolerance = 5 * time.Minute

// maxSignatureHeaderLength bounds the work Verify does on hostile input; two
// v1 entries and a timestamp need under 150 bytes.
const maxSignatureHeaderLength = 4096

// Errors returned by Verify, wrapped with detail.
var (
	ErrMalformedSignature      = errors.New("webhook: malformed signature header")
	ErrTimestampOutOfTolerance = errors.New("webhook: signature timestamp outside tolerance")
	ErrSignatureMismatch       = errors.New("webhook: no signature matches")
)

// Sign returns the hex HMAC-SHA256 of "<timestamp>.<body>" under secret,
// the value of one v1= entry in the signature header. The timestamp is
// signed so a captured request cannot be replayed later with a new one.
func Sign(secret []byte, timestamp int64, body []byte) string {
	return hex.EncodeToString(signature(secret, timestamp, body))
}

func signature(secret []byte, timestamp int64, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(strconv.AppendInt(nil, timestamp, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// signatureHeaderValue builds "t=<timestamp>,v1=<sig>[,v1=<sig>]", one v1
// entry per secret in the order given, so receivers that only read the first
// entry check against the current secret.
func signatureHeaderValue(secrets [][]byte, timestamp int64, body []byte) string {
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(timestamp, 10))
	for _, secret := range secrets {
		b.WriteString(",v1=")
		b.WriteString(Sign(secret, timestamp, body))
	}
	return b.String()
}

// Verify checks a Mailgate-Signature header value against body as a
// receiver would: some v1 entry must equal the HMAC under secret (compared
// in constant time), and the timestamp must lie within tolerance of now in
// either direction. A tolerance of zero or less means DefaultTolerance.
// Entries with unknown keys are ignored so new schemes can be added later.
func Verify(header string, secret []byte, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return errors.New("webhook: empty secret")
	}
	timestamp, sigs, err := parseSignatureHeader(header)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	signedAt := time.Unix(timestamp, 0)
	if skew := now.Sub(signedAt); skew > tolerance || skew < -tolerance {
		return fmt.Errorf("%w: signed at %s, %s away from %s (tolerance %s)",
			ErrTimestampOutOfTolerance, signedAt.UTC().Format(time.RFC3339), skew.Abs(), now.UTC().Format(time.RFC3339), tolerance)
	}
	want := signature(secret, timestamp, body)
	matched := 0
	for _, sig := range sigs {
		// Every entry is compared, so timing does not reveal which one matched.
		if hmac.Equal(sig, want) {
			matched++
		}
	}
	if matched == 0 {
		return ErrSignatureMismatch
	}
	return nil
}

// parseSignatureHeader returns the single t= value and the decoded v1=
// values, requiring at least one of the latter.
func parseSignatureHeader(header string) (timestamp int64, sigs [][]byte, err error) {
	if len(header) > maxSignatureHeaderLength {
		return 0, nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformedSignature, maxSignatureHeaderLength)
	}
	seenTimestamp := false
	for entry := range strings.SplitSeq(header, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok {
			return 0, nil, fmt.Errorf("%w: entry %q is not key=value", ErrMalformedSignature, entry)
		}
		switch key {
		case "t":
			if seenTimestamp {
				return 0, nil, fmt.Errorf("%w: more than one t= entry", ErrMalformedSignature)
			}
			seenTimestamp = true
			timestamp, err = strconv.ParseInt(value, 10, 64)
			if err != nil || timestamp < 0 {
				return 0, nil, fmt.Errorf("%w: t=%q is not a Unix time in seconds", ErrMalformedSignature, value)
			}
		case "v1":
			sig, err := hex.DecodeString(value)
			if err != nil || len(sig) != sha256.Size {
				return 0, nil, fmt.Errorf("%w: v1 is not %d hex digits", ErrMalformedSignature, 2*sha256.Size)
			}
			sigs = append(sigs, sig)
		}
	}
	if !seenTimestamp {
		return 0, nil, fmt.Errorf("%w: no t= entry", ErrMalformedSignature)
	}
	if len(sigs) == 0 {
		return 0, nil, fmt.Errorf("%w: no v1= entry", ErrMalformedSignature)
	}
	return timestamp, sigs, nil
}

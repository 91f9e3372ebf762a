package mailbuild

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"

	"github.com/mailgate/mailgate/domain"
)

// DKIMAlgorithm is a DKIM signing algorithm, spelled as in the a= tag.
type DKIMAlgorithm string

// The algorithms a DKIMSigner can use. RSA is what every verifier understands;
// Ed25519 (RFC 8463) is short and fast but not yet verified everywhere, so a
// domain that wants it usually publishes both under different selectors.
const (
	RSASHA256     DKIMAlgorithm = "rsa-sha256"
	Ed25519SHA256 DKIMAlgorithm = "ed25519-sha256"
)

// Bounds on RSA keys.
const (
	// GenerateRSABits is the size of generated RSA keys, the size RFC 8301
	// says signers should use.
	GenerateRSABits = 2048
	// MinRSABits is the smallest key accepted on load: RFC 8301 forbids
	// verifiers from accepting anything shorter.
	MinRSABits = 1024
	// MaxRSABits is the largest key accepted on load: RFC 8301 only requires
	// verifiers to handle keys up to this size, and the public key must
	// still fit in a DNS TXT record.
	MaxRSABits = 4096
)

// Field names for invalid-input errors, in the spelling a tenant settings API
// would use for the same values.
const (
	fieldAlgorithm  = "algorithm"
	fieldDomain     = "domain"
	fieldSelector   = "selector"
	fieldPrivateKey = "private_key"
)

// GenerateDKIMKey returns a new private key for alg as a PKCS#8 "PRIVATE KEY"
// PEM block: RSA keys are GenerateRSABits long.
func GenerateDKIMKey(alg DKIMAlgorithm) (privatePEM []byte, err error) {
	var key any
	switch alg {
	case RSASHA256:
		key, err = rsa.GenerateKey(rand.Reader, GenerateRSABits)
	case Ed25519SHA256:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, domain.FieldError(fieldAlgorithm, "must be %s or %s, got %q", RSASHA256, Ed25519SHA256, alg)
	}
	if err != nil {
		return nil, fmt.Errorf("dkim: generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("dkim: encode %s key: %w", alg, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// DKIMRecord returns the value of the TXT record to publish at
// <selector>._domainkey.<domain> for the key in privatePEM. An RSA record
// carries the SubjectPublicKeyInfo DER; an Ed25519 record carries the raw
// 32-byte key, as RFC 8463 requires. An RSA record is longer than 255 bytes,
// so the zone must split it into several strings of one TXT record.
func DKIMRecord(privatePEM []byte) (string, error) {
	key, alg, err := parsePrivateKey(privatePEM)
	if err != nil {
		return "", err
	}
	var keyType string
	var public []byte
	switch alg {
	case RSASHA256:
		keyType = "rsa"
		public, err = x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			return "", fmt.Errorf("dkim: encode public key: %w", err)
		}
	case Ed25519SHA256:
		keyType = "ed25519"
		public = key.Public().(ed25519.PublicKey)
	}
	return "v=DKIM1; k=" + keyType + "; p=" + base64.StdEncoding.EncodeToString(public), nil
}

// parsePrivateKey reads one PEM private key: PKCS#8, or PKCS#1 for RSA keys
// made by older tools such as opendkim-genkey. Anything else is refused
// rather than guessed at, including encrypted PEM and trailing data.
func parsePrivateKey(privatePEM []byte) (crypto.Signer, DKIMAlgorithm, error) {
	block, rest := pem.Decode(privatePEM)
	if block == nil {
		return nil, "", domain.FieldError(fieldPrivateKey, "is not a PEM block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, "", domain.FieldError(fieldPrivateKey, "has data after the first PEM block")
	}
	if len(block.Headers) != 0 {
		// Proc-Type and DEK-Info headers mark legacy PEM encryption.
		return nil, "", domain.FieldError(fieldPrivateKey, "must not be encrypted or carry PEM headers")
	}

	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, "", domain.FieldError(fieldPrivateKey, "is a %q PEM block, want PRIVATE KEY", block.Type)
	}
	if err != nil {
		e := domain.FieldError(fieldPrivateKey, "is not a valid %s", block.Type)
		e.Cause = err
		return nil, "", e
	}

	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
			return nil, "", domain.FieldError(fieldPrivateKey, "is a %d-bit RSA key, want %d to %d bits", bits, MinRSABits, MaxRSABits)
		}
		return k, RSASHA256, nil
	case ed25519.PrivateKey:
		return k, Ed25519SHA256, nil
	default:
		return nil, "", domain.FieldError(fieldPrivateKey, "is a %T, want an RSA or Ed25519 key", key)
	}
}

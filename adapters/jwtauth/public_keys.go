package jwtauth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Limits on the public keys file.
const (
	// MinRSABits is the smallest RSA modulus accepted; shorter keys are
	// within reach of factoring.
	MinRSABits = 2048
	// MaxRSABits caps the modulus because a token chooses which key checks
	// it, and verification cost grows with the key size.
	MaxRSABits = 8192
	// MaxPublicKeysFileBytes stops a wrong path (a log, a disk image) from
	// being read into memory whole.
	MaxPublicKeysFileBytes = 1 << 20
)

// publicKey is one verification key and the only algorithm it accepts.
type publicKey struct {
	kid    string
	method jwt.SigningMethod // jwt.SigningMethodRS256 or jwt.SigningMethodEdDSA
	key    any               // *rsa.PublicKey or ed25519.PublicKey
}

// keySet is an immutable set of keys by kid; a reload replaces it whole.
type keySet struct {
	byKID map[string]publicKey
}

// loadKeySet reads and parses the public keys file at path.
func loadKeySet(path string) (*keySet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("jwtauth: public keys file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxPublicKeysFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwtauth: public keys file %s: %w", path, err)
	}
	if len(data) > MaxPublicKeysFileBytes {
		return nil, fmt.Errorf("jwtauth: public keys file %s is larger than %d bytes", path, MaxPublicKeysFileBytes)
	}
	ks, err := parseKeySet(data)
	if err != nil {
		return nil, fmt.Errorf("jwtauth: public keys file %s: %w", path, err)
	}
	return ks, nil
}

// parseKeySet accepts either of two formats, told apart by the first
// non-blank byte:
//
//   - A JWKS JSON object, {"keys":[...]}, of RSA keys (kty "RSA", n, e) and
//     Ed25519 keys (kty "OKP", crv "Ed25519", x). Keys whose use is set to
//     anything but "sig" are skipped; an alg, when present, must be RS256
//     for RSA and EdDSA (or Ed25519) for OKP.
//   - PEM text of one or more PKIX "PUBLIC KEY" blocks, each of which may
//     name its kid in a PEM header ("Kid: abc"; the name is case-insensitive).
//
// A key without a kid gets its RFC 7638 JWK thumbprint (SHA-256, base64url
// without padding), the same id JWKS tooling computes for that key in either
// format. Everything else is an error rather than a skipped key, so a typo
// cannot silently leave a key out: other key types or curves, RSA keys
// outside [MinRSABits, MaxRSABits], private key material, duplicate kids, and
// a file with no usable key at all.
func parseKeySet(data []byte) (*keySet, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("file is empty")
	}
	var (
		keys []publicKey
		err  error
	)
	if trimmed[0] == '{' {
		keys, err = parseJWKS(trimmed)
	} else {
		keys, err = parsePEMKeys(data)
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable signing keys")
	}
	ks := &keySet{byKID: make(map[string]publicKey, len(keys))}
	for _, k := range keys {
		if _, dup := ks.byKID[k.kid]; dup {
			return nil, fmt.Errorf("kid %q is used by more than one key", k.kid)
		}
		ks.byKID[k.kid] = k
	}
	return ks, nil
}

// parsePEMKeys reads every PEM block in data. Text outside blocks is
// ignored, as openssl's own tools allow.
func parsePEMKeys(data []byte) ([]publicKey, error) {
	begin := []byte("-----BEGIN ")
	var keys []publicKey
	rest := data
	for n := 1; ; n++ {
		block, after := pem.Decode(rest)
		// pem.Decode passes over a block it cannot parse and returns the
		// next good one, or nil, which would drop a key without a word; a
		// second BEGIN line in what it consumed gives that away.
		consumed := rest[:len(rest)-len(after)]
		if block == nil {
			if bytes.Contains(rest, begin) {
				return nil, fmt.Errorf("PEM block %d is malformed or truncated", n)
			}
			break
		}
		if bytes.Count(consumed, begin) > 1 {
			return nil, fmt.Errorf("PEM block %d is malformed or truncated", n)
		}
		rest = after

		if block.Type != "PUBLIC KEY" {
			hint := ""
			if block.Type == "RSA PUBLIC KEY" {
				hint = " (convert PKCS#1 with `openssl rsa -RSAPublicKey_in -pubout`)"
			}
			return nil, fmt.Errorf("PEM block %d is %q, want \"PUBLIC KEY\"%s", n, block.Type, hint)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d is not a PKIX public key: %w", n, err)
		}
		k, err := newPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		for name, value := range block.Headers {
			if !strings.EqualFold(name, "kid") {
				continue
			}
			if value == "" {
				return nil, fmt.Errorf("PEM block %d: empty %s header", n, name)
			}
			if k.kid != "" {
				return nil, fmt.Errorf("PEM block %d: more than one kid header", n)
			}
			k.kid = value
		}
		if k.kid == "" {
			k.kid = thumbprint(k.key)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("neither PEM nor JWKS: no PEM block found and the file does not start with '{'")
	}
	return keys, nil
}

// jwk holds the members of a JSON Web Key that matter here; others such as
// x5c are ignored, and key material is never taken from tokens themselves.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	// D is the private part of both RSA and OKP keys.
	D string `json:"d"`
}

// parseJWKS reads a JWKS document.
func parseJWKS(data []byte) ([]publicKey, error) {
	var doc struct {
		Keys *[]jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`JWKS: no "keys" array`)
	}
	var keys []publicKey
	skipped := 0
	for i, j := range *doc.Keys {
		if j.Use != "" && j.Use != "sig" {
			skipped++
			continue
		}
		k, err := j.publicKey()
		if err != nil {
			if j.Kid != "" {
				return nil, fmt.Errorf("JWKS keys[%d] (kid %q): %w", i, j.Kid, err)
			}
			return nil, fmt.Errorf("JWKS keys[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 && skipped > 0 {
		return nil, fmt.Errorf("no usable signing keys: all %d have a use other than \"sig\"", skipped)
	}
	return keys, nil
}

// publicKey converts j, checking it fits its algorithm.
func (j jwk) publicKey() (publicKey, error) {
	if j.D != "" {
		return publicKey{}, errors.New("contains private key material (d); publish only the public key")
	}
	var pub any
	switch j.Kty {
	case "RSA":
		if j.Alg != "" && j.Alg != "RS256" {
			return publicKey{}, fmt.Errorf("RSA key with alg %q, only RS256 is accepted", j.Alg)
		}
		n, err := decodeB64URL("n", j.N)
		if err != nil {
			return publicKey{}, err
		}
		e, err := decodeB64URL("e", j.E)
		if err != nil {
			return publicKey{}, err
		}
		// Leading zero bytes do not change the value, so only the significant
		// ones count towards the 31-bit limit on the exponent.
		e = bytes.TrimLeft(e, "\x00")
		if len(e) > 4 {
			return publicKey{}, errors.New("RSA exponent e is too large")
		}
		exp := new(big.Int).SetBytes(e)
		if !exp.IsInt64() || exp.Int64() > 1<<31-1 {
			return publicKey{}, errors.New("RSA exponent e is too large")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}
	case "OKP":
		if j.Crv != "Ed25519" {
			return publicKey{}, fmt.Errorf("OKP key on curve %q, only Ed25519 is accepted", j.Crv)
		}
		if j.Alg != "" && j.Alg != "EdDSA" && j.Alg != "Ed25519" {
			return publicKey{}, fmt.Errorf("Ed25519 key with alg %q, want EdDSA", j.Alg)
		}
		x, err := decodeB64URL("x", j.X)
		if err != nil {
			return publicKey{}, err
		}
		if len(x) != ed25519.PublicKeySize {
			return publicKey{}, fmt.Errorf("Ed25519 key x is %d bytes, want %d", len(x), ed25519.PublicKeySize)
		}
		pub = ed25519.PublicKey(x)
	case "":
		return publicKey{}, errors.New("kty missing")
	default:
		return publicKey{}, fmt.Errorf("kty %q is not supported, want RSA or OKP", j.Kty)
	}
	k, err := newPublicKey(pub)
	if err != nil {
		return publicKey{}, err
	}
	k.kid = j.Kid
	if k.kid == "" {
		k.kid = thumbprint(k.key)
	}
	return k, nil
}

// decodeB64URL decodes a required base64url member without padding, as
// RFC 7518 writes key parameters.
func decodeB64URL(member, s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("member %q missing", member)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("member %q is not unpadded base64url: %w", member, err)
	}
	return b, nil
}

// newPublicKey pins pub to its one algorithm after checking it is strong
// enough; the kid is left for the caller.
func newPublicKey(pub any) (publicKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
			return publicKey{}, fmt.Errorf("RSA key is %d bits, want %d to %d", bits, MinRSABits, MaxRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return publicKey{}, fmt.Errorf("RSA exponent %d is invalid", k.E)
		}
		return publicKey{method: jwt.SigningMethodRS256, key: k}, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return publicKey{}, fmt.Errorf("Ed25519 key is %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		return publicKey{method: jwt.SigningMethodEdDSA, key: k}, nil
	default:
		return publicKey{}, fmt.Errorf("key type %T is not supported, want RSA or Ed25519", pub)
	}
}

// thumbprint returns the RFC 7638 JWK thumbprint of key, an *rsa.PublicKey
// or ed25519.PublicKey: the base64url SHA-256 of its required JWK members in
// lexical order. The members are base64url strings, so no JSON escaping is
// needed.
func thumbprint(key any) string {
	b64 := base64.RawURLEncoding.EncodeToString
	var canonical string
	switch k := key.(type) {
	case *rsa.PublicKey:
		e := big.NewInt(int64(k.E)).Bytes()
		canonical = `{"e":"` + b64(e) + `","kty":"RSA","n":"` + b64(k.N.Bytes()) + `"}`
	case ed25519.PublicKey:
		canonical = `{"crv":"Ed25519","kty":"OKP","x":"` + b64(k) + `"}`
	default:
		// newPublicKey admits only the two types above.
		panic(fmt.Sprintf("jwtauth: thumbprint of %T", key))
	}
	sum := sha256.Sum256([]byte(canonical))
	return b64(sum[:])
}

package jwtauth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// testKeys are generated once per run: RSA-2048 generation is slow enough
// under -race that every test making its own would dominate the run time.
type testKeys struct {
	rsa1, rsa2 *rsa.PrivateKey
	ed1, ed2   ed25519.PrivateKey
}

var generateTestKeys = sync.OnceValues(func() (testKeys, error) {
	var k testKeys
	var err error
	if k.rsa1, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return k, err
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return k, err
	}
	if _, k.ed1, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return k, err
	}
	if _, k.ed2, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return k, err
	}
	return k, nil
})

func keys(t *testing.T) testKeys {
	t.Helper()
	k, err := generateTestKeys()
	if err != nil {
		t.Fatalf("generate keys: %v", err)
	}
	return k
}

// pemKey encodes pub as a PKIX PUBLIC KEY block, with a Kid header unless
// kid is empty.
func pemKey(t *testing.T, pub any, kid string) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	b := &pem.Block{Type: "PUBLIC KEY", Bytes: der}
	if kid != "" {
		b.Headers = map[string]string{"Kid": kid}
	}
	return pem.EncodeToMemory(b)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(pub *rsa.PublicKey, kid string) map[string]any {
	m := map[string]any{"kty": "RSA", "n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())}
	if kid != "" {
		m["kid"] = kid
	}
	return m
}

func edJWK(pub ed25519.PublicKey, kid string) map[string]any {
	m := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(pub)}
	if kid != "" {
		m["kid"] = kid
	}
	return m
}

func jwksBytes(t *testing.T, keys ...map[string]any) []byte {
	t.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeKeysFile writes the concatenated parts to a fresh file and returns its path.
func writeKeysFile(t *testing.T, parts ...[]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys")
	rewrite(t, path, parts...)
	return path
}

// rewrite replaces path's content the way an operator's deploy would: write
// a sibling, then rename, so a reader never sees half a file.
func rewrite(t *testing.T, path string, parts ...[]byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, bytes.Join(parts, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// signKID signs claims with a kid header, omitted when kid is empty.
func signKID(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func newKeysAuth(t *testing.T, opts Options) *Authenticator {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	a, err := NewAuthenticator(opts)
	if err != nil {
		t.Fatalf("NewAuthenticator: %v", err)
	}
	return a
}

func requireVerifies(t *testing.T, a *Authenticator, token string, sub uuid.UUID) {
	t.Helper()
	got, err := a.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.SubscriptionID != sub {
		t.Fatalf("subscription = %s, want %s", got.SubscriptionID, sub)
	}
}

func TestNewAuthenticator(t *testing.T) {
	t.Parallel()
	k := keys(t)

	t.Run("ErrNothingConfigured", func(t *testing.T) {
		t.Parallel()
		if _, err := NewAuthenticator(Options{}); err == nil {
			t.Fatal("empty Options accepted")
		}
		if _, err := NewAuthenticator(Options{HS256Secret: []byte{}}); err == nil {
			t.Fatal("empty secret accepted as a secret")
		}
	})

	t.Run("ErrShortSecret", func(t *testing.T) {
		t.Parallel()
		path := writeKeysFile(t, pemKey(t, k.rsa1.Public(), "rsa-1"))
		if _, err := NewAuthenticator(Options{HS256Secret: testSecret[:31], PublicKeysFile: path}); err == nil {
			t.Fatal("31-byte secret accepted beside a keys file")
		}
	})

	t.Run("ErrMissingFile", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "absent.pem")
		_, err := NewAuthenticator(Options{PublicKeysFile: path})
		if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Fatalf("err = %v, want not-exist naming the path", err)
		}
	})

	t.Run("OKNewHS256LoadsKeysFile", func(t *testing.T) {
		t.Parallel()
		sub := uuid.New()
		path := writeKeysFile(t, pemKey(t, k.ed1.Public(), "ed-1"))
		a, err := NewHS256(testSecret, Options{PublicKeysFile: path, Now: fixedNow})
		if err != nil {
			t.Fatal(err)
		}
		requireVerifies(t, a, signKID(t, jwt.SigningMethodEdDSA, k.ed1, "ed-1", validClaims(sub)), sub)
		requireVerifies(t, a, sign(t, jwt.SigningMethodHS256, testSecret, validClaims(sub)), sub)
	})
}

func TestVerifyPublicKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	k := keys(t)
	sub := uuid.New()

	rsaPEM := pemKey(t, k.rsa1.Public(), "rsa-1")
	rsaDER, err := x509.MarshalPKIXPublicKey(k.rsa1.Public())
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS1 := x509.MarshalPKCS1PublicKey(&k.rsa1.PublicKey)
	edPEM := pemKey(t, k.ed1.Public(), "ed-1")
	path := writeKeysFile(t, rsaPEM, edPEM)

	withSecret := newKeysAuth(t, Options{HS256Secret: testSecret, PublicKeysFile: path})
	keysOnly := newKeysAuth(t, Options{PublicKeysFile: path})
	both := []struct {
		name string
		a    *Authenticator
	}{{"WithSecret", withSecret}, {"KeysOnly", keysOnly}}

	t.Run("OKRS256", func(t *testing.T) {
		t.Parallel()
		for _, c := range both {
			requireVerifies(t, c.a, signKID(t, jwt.SigningMethodRS256, k.rsa1, "rsa-1", validClaims(sub)), sub)
		}
	})

	t.Run("OKEdDSA", func(t *testing.T) {
		t.Parallel()
		for _, c := range both {
			requireVerifies(t, c.a, signKID(t, jwt.SigningMethodEdDSA, k.ed1, "ed-1", validClaims(sub)), sub)
		}
	})

	t.Run("OKAdminClaim", func(t *testing.T) {
		t.Parallel()
		c := validClaims(sub)
		c["admin"] = true
		got, err := keysOnly.Verify(ctx, signKID(t, jwt.SigningMethodRS256, k.rsa1, "rsa-1", c))
		if err != nil || !got.Admin || !got.ExpiresAt.Equal(fixedNow().Add(time.Hour)) {
			t.Fatalf("claims = %+v, err = %v", got, err)
		}
	})

	t.Run("OKHS256BesideKeys", func(t *testing.T) {
		t.Parallel()
		requireVerifies(t, withSecret, sign(t, jwt.SigningMethodHS256, testSecret, validClaims(sub)), sub)
		// The secret has no id, so a kid naming no public key is no reason to refuse.
		requireVerifies(t, withSecret, signKID(t, jwt.SigningMethodHS256, testSecret, "hmac", validClaims(sub)), sub)
	})

	t.Run("OKDerivedKid", func(t *testing.T) {
		t.Parallel()
		a := newKeysAuth(t, Options{PublicKeysFile: writeKeysFile(t, pemKey(t, k.rsa2.Public(), ""), pemKey(t, k.ed2.Public(), ""))})
		requireVerifies(t, a, signKID(t, jwt.SigningMethodRS256, k.rsa2, thumbprint(k.rsa2.Public()), validClaims(sub)), sub)
		requireVerifies(t, a, signKID(t, jwt.SigningMethodEdDSA, k.ed2, thumbprint(k.ed2.Public()), validClaims(sub)), sub)
	})

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, attacker, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		opts   Options
		token  func(t *testing.T) string
		reason error // expected in the Cause chain, when jwt reports it
		cause  string
	}{
		{
			name: "ErrUnknownKid",
			token: func(t *testing.T) string {
				return signKID(t, jwt.SigningMethodRS256, k.rsa1, "rsa-9", validClaims(sub))
			},
			cause: "unknown kid",
		},
		{
			name: "ErrMissingKidRS256",
			token: func(t *testing.T) string {
				return signKID(t, jwt.SigningMethodRS256, k.rsa1, "", validClaims(sub))
			},
			cause: "without a kid",
		},
		{
			name: "ErrMissingKidEdDSA",
			token: func(t *testing.T) string {
				return signKID(t, jwt.SigningMethodEdDSA, k.ed1, "", validClaims(sub))
			},
			cause: "without a kid",
		},
		{
			name: "ErrKidNotString",
			token: func(t *testing.T) string {
				tok := jwt.NewWithClaims(jwt.SigningMethodRS256, validClaims(sub))
				tok.Header["kid"] = 1
				s, err := tok.SignedString(k.rsa1)
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			cause: "not a string",
		},
		{
			name: "ErrWrongRSAKeyForKid",
			token: func(t *testing.T) string {
				return signKID(t, jwt.SigningMethodRS256, k.rsa2, "rsa-1", validClaims(sub))
			},
			reason: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "ErrEdDSAWithRSAKid",
			token: func(t *testing.T) string {
				return signKID(t, jwt.SigningMethodEdDSA, k.ed1, "rsa-1", validClaims(sub))
			},
			cause: "RS256 key",
		},
		{
			name: "ErrRS256WithEdKid",
			token: func(t *testing.T) string {
				return signKID(t, jwt.SigningMethodRS256, k.rsa1, "ed-1", validClaims(sub))
			},
			cause: "EdDSA key",
		},
		{
			name: "ErrHS256NamingRSAKid",
			opts: Options{HS256Secret: testSecret},
			token: func(t *testing.T) string {
				return signKID(t, jwt.SigningMethodHS256, testSecret, "rsa-1", validClaims(sub))
			},
			cause: "RS256 key",
		},
		{
			name: "ErrAlgNone",
			token: func(t *testing.T) string {
				return signKID(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa-1", validClaims(sub))
			},
			reason: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "ErrRS384",
			token: func(t *testing.T) string {
				return signKID(t, jwt.SigningMethodRS384, k.rsa1, "rsa-1", validClaims(sub))
			},
			reason: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "ErrPS256",
			token: func(t *testing.T) string {
				return signKID(t, jwt.SigningMethodPS256, k.rsa1, "rsa-1", validClaims(sub))
			},
			reason: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "ErrES256",
			token: func(t *testing.T) string {
				return signKID(t, jwt.SigningMethodES256, ecKey, "rsa-1", validClaims(sub))
			},
			reason: jwt.ErrTokenSignatureInvalid,
		},
		{
			// A jwk header is key material chosen by the token; it must not
			// be trusted even when its thumbprint is used as the kid.
			name: "ErrEmbeddedJWK",
			token: func(t *testing.T) string {
				pub := attacker.Public().(ed25519.PublicKey)
				tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, validClaims(sub))
				tok.Header["kid"] = thumbprint(pub)
				tok.Header["jwk"] = edJWK(pub, "")
				s, err := tok.SignedString(attacker)
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			cause: "unknown kid",
		},
		{
			name: "ErrCrit",
			token: func(t *testing.T) string {
				tok := jwt.NewWithClaims(jwt.SigningMethodRS256, validClaims(sub))
				tok.Header["kid"] = "rsa-1"
				tok.Header["crit"] = []string{"exp"}
				s, err := tok.SignedString(k.rsa1)
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			cause: "crit",
		},
		{
			name: "ErrExpired",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["exp"] = fixedNow().Add(-time.Minute).Unix()
				return signKID(t, jwt.SigningMethodEdDSA, k.ed1, "ed-1", c)
			},
			reason: jwt.ErrTokenExpired,
		},
		{
			name: "ErrMissingExp",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				delete(c, "exp")
				return signKID(t, jwt.SigningMethodRS256, k.rsa1, "rsa-1", c)
			},
			reason: jwt.ErrTokenRequiredClaimMissing,
		},
		{
			name: "ErrNotYetValid",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["nbf"] = fixedNow().Add(time.Minute).Unix()
				return signKID(t, jwt.SigningMethodRS256, k.rsa1, "rsa-1", c)
			},
			reason: jwt.ErrTokenNotValidYet,
		},
		{
			name: "ErrIssuedInFuture",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["iat"] = fixedNow().Add(time.Minute).Unix()
				return signKID(t, jwt.SigningMethodEdDSA, k.ed1, "ed-1", c)
			},
			reason: jwt.ErrTokenUsedBeforeIssued,
		},
		{
			name: "ErrIssuerMismatch",
			opts: Options{Issuer: "idp"},
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["iss"] = "other-idp"
				return signKID(t, jwt.SigningMethodRS256, k.rsa1, "rsa-1", c)
			},
			reason: jwt.ErrTokenInvalidIssuer,
		},
		{
			name: "ErrAudienceMissing",
			opts: Options{Audience: "mailgate-api"},
			token: func(t *testing.T) string {
				return signKID(t, jwt.SigningMethodEdDSA, k.ed1, "ed-1", validClaims(sub))
			},
			reason: jwt.ErrTokenRequiredClaimMissing,
		},
		{
			name: "ErrOversize",
			opts: Options{MaxTokenBytes: 256},
			token: func(t *testing.T) string {
				// An RS256 signature alone is 342 base64 characters.
				return signKID(t, jwt.SigningMethodRS256, k.rsa1, "rsa-1", validClaims(sub))
			},
			cause: "limit",
		},
		{
			name: "ErrHS256WithoutSecret",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodHS256, testSecret, validClaims(sub))
			},
			reason: jwt.ErrTokenSignatureInvalid,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := tc.opts
			opts.PublicKeysFile = path
			a := newKeysAuth(t, opts)
			_, err := a.Verify(ctx, tc.token(t))
			requireUnauthorized(t, err)
			if tc.reason != nil && !errors.Is(err, tc.reason) {
				t.Fatalf("cause = %v, want %v", err, tc.reason)
			}
			if tc.cause != "" && !strings.Contains(err.Error(), tc.cause) {
				t.Fatalf("cause = %v, want it to mention %q", err, tc.cause)
			}
		})
	}

	// The classic confusion: a verifier that hands "the key" to whatever
	// algorithm the header names would check an HS256 MAC keyed with the
	// public key, which anyone can compute.
	t.Run("ErrHS256KeyedWithPublicKey", func(t *testing.T) {
		t.Parallel()
		fileBytes, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		hmacKeys := map[string][]byte{
			"PEMBlock": rsaPEM,
			"PEMFile":  fileBytes,
			"PKIXDER":  rsaDER,
			"PKCS1DER": rsaPKCS1,
			"Ed25519":  k.ed1.Public().(ed25519.PublicKey),
		}
		for _, c := range both {
			for keyName, hmacKey := range hmacKeys {
				for _, kid := range []string{"", "rsa-1", "ed-1"} {
					tok := signKID(t, jwt.SigningMethodHS256, hmacKey, kid, validClaims(sub))
					_, err := c.a.Verify(ctx, tok)
					if err == nil {
						t.Fatalf("%s: HS256 keyed with %s, kid %q, accepted", c.name, keyName, kid)
					}
					requireUnauthorized(t, err)
				}
			}
		}
	})
}

func TestIssueNeedsSecret(t *testing.T) {
	t.Parallel()
	k := keys(t)
	sub := uuid.New()
	path := writeKeysFile(t, pemKey(t, k.rsa1.Public(), "rsa-1"))

	t.Run("ErrKeysOnly", func(t *testing.T) {
		t.Parallel()
		a := newKeysAuth(t, Options{PublicKeysFile: path})
		_, err := a.Issue(sub, time.Hour, false)
		if err == nil || !strings.Contains(err.Error(), "HS256 secret") {
			t.Fatalf("err = %v, want a missing-secret error", err)
		}
	})

	t.Run("OKWithKeys", func(t *testing.T) {
		t.Parallel()
		a := newKeysAuth(t, Options{HS256Secret: testSecret, PublicKeysFile: path})
		tok, err := a.Issue(sub, time.Hour, true)
		if err != nil {
			t.Fatal(err)
		}
		parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
		if err != nil {
			t.Fatal(err)
		}
		if parsed.Method != jwt.SigningMethodHS256 {
			t.Fatalf("alg = %s, want HS256", parsed.Method.Alg())
		}
		if _, ok := parsed.Header["kid"]; ok {
			t.Fatalf("HS256 token carries a kid: %v", parsed.Header)
		}
		got, err := a.Verify(context.Background(), tok)
		if err != nil || !got.Admin || got.SubscriptionID != sub {
			t.Fatalf("claims = %+v, err = %v", got, err)
		}
	})
}

func TestLoadJWKS(t *testing.T) {
	t.Parallel()
	k := keys(t)
	sub := uuid.New()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		r := rsaJWK(&k.rsa1.PublicKey, "rsa-1")
		r["alg"], r["use"] = "RS256", "sig"
		e := edJWK(k.ed1.Public().(ed25519.PublicKey), "ed-1")
		e["alg"] = "EdDSA"
		// Members we do not use, such as x5t, are ignored.
		e["x5t"] = "ignored"
		a := newKeysAuth(t, Options{PublicKeysFile: writeKeysFile(t, []byte("\n  "), jwksBytes(t, r, e))})
		requireVerifies(t, a, signKID(t, jwt.SigningMethodRS256, k.rsa1, "rsa-1", validClaims(sub)), sub)
		requireVerifies(t, a, signKID(t, jwt.SigningMethodEdDSA, k.ed1, "ed-1", validClaims(sub)), sub)
		_, err := a.Verify(context.Background(), signKID(t, jwt.SigningMethodEdDSA, k.ed1, "rsa-1", validClaims(sub)))
		requireUnauthorized(t, err)
	})

	t.Run("OKEncKeySkipped", func(t *testing.T) {
		t.Parallel()
		enc := rsaJWK(&k.rsa2.PublicKey, "rsa-enc")
		enc["use"], enc["alg"] = "enc", "RSA-OAEP"
		a := newKeysAuth(t, Options{PublicKeysFile: writeKeysFile(t, jwksBytes(t, rsaJWK(&k.rsa1.PublicKey, "rsa-1"), enc))})
		requireVerifies(t, a, signKID(t, jwt.SigningMethodRS256, k.rsa1, "rsa-1", validClaims(sub)), sub)
		_, err := a.Verify(context.Background(), signKID(t, jwt.SigningMethodRS256, k.rsa2, "rsa-enc", validClaims(sub)))
		requireUnauthorized(t, err)
		if !strings.Contains(err.Error(), "unknown kid") {
			t.Fatalf("cause = %v, want unknown kid", err)
		}
	})

	// RFC 7638 section 3.1's example key and thumbprint: a kid derived in
	// either format is the id JWKS tooling would give the key.
	t.Run("OKDerivedKidIsRFC7638Thumbprint", func(t *testing.T) {
		t.Parallel()
		const (
			n    = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
			want = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
		)
		ks, err := parseKeySet(jwksBytes(t, map[string]any{"kty": "RSA", "n": n, "e": "AQAB", "use": "sig"}))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := ks.byKID[want]
		if !ok {
			t.Fatalf("kids = %v, want %s", ks.byKID, want)
		}
		ks, err = parseKeySet(pemKey(t, got.key, ""))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := ks.byKID[want]; !ok {
			t.Fatalf("PEM kids = %v, want %s", ks.byKID, want)
		}
	})
}

func TestLoadPEM(t *testing.T) {
	t.Parallel()
	k := keys(t)

	t.Run("OKKidHeaderAnyCase", func(t *testing.T) {
		t.Parallel()
		var file []byte
		for i, name := range []string{"kid", "Kid", "KID"} {
			pub := []any{k.rsa1.Public(), k.ed1.Public(), k.ed2.Public()}[i]
			der, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			file = append(file, pem.EncodeToMemory(&pem.Block{
				Type:    "PUBLIC KEY",
				Headers: map[string]string{name: "key-" + name, "Comment": "ignored"},
				Bytes:   der,
			})...)
		}
		// Text around blocks, as `openssl pkey -text` leaves it, is ignored.
		file = append([]byte("# mailgate verification keys\n"), file...)
		ks, err := parseKeySet(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, kid := range []string{"key-kid", "key-Kid", "key-KID"} {
			if _, ok := ks.byKID[kid]; !ok {
				t.Fatalf("kid %q missing from %v", kid, ks.byKID)
			}
		}
		if ks.byKID["key-kid"].method != jwt.SigningMethodRS256 || ks.byKID["key-Kid"].method != jwt.SigningMethodEdDSA {
			t.Fatal("algorithms not pinned to key types")
		}
	})
}

// TestLoadErrors checks each unusable file is refused with a message that
// points at the problem.
func TestLoadErrors(t *testing.T) {
	t.Parallel()
	k := keys(t)
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := pemKey(t, k.rsa1.Public(), "rsa-1")
	privDER, err := x509.MarshalPKCS8PrivateKey(k.rsa1)
	if err != nil {
		t.Fatal(err)
	}
	truncated := pemKey(t, k.ed1.Public(), "ed-1")
	truncated = truncated[:len(truncated)-20]
	badBody := []byte("-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n")
	rsaKey := func(mod func(map[string]any)) map[string]any {
		m := rsaJWK(&k.rsa1.PublicKey, "rsa-1")
		mod(m)
		return m
	}
	edKey := func(mod func(map[string]any)) map[string]any {
		m := edJWK(k.ed1.Public().(ed25519.PublicKey), "ed-1")
		mod(m)
		return m
	}
	enc := rsaJWK(&k.rsa2.PublicKey, "rsa-enc")
	enc["use"] = "enc"

	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"Empty", []byte(" \n"), "empty"},
		{"NeitherFormat", []byte("hello"), "neither PEM nor JWKS"},
		{"RSA1024PEM", pemKey(t, weak.Public(), "weak"), "1024 bits"},
		{"RSA1024JWKS", jwksBytes(t, rsaJWK(&weak.PublicKey, "weak")), "1024 bits"},
		{"ECDSAPEM", pemKey(t, ecKey.Public(), "ec"), "not supported"},
		{"PrivateKeyPEM", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), `"PRIVATE KEY"`},
		{"PKCS1PEM", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa1.PublicKey)}), "PKCS#1"},
		{"NotDER", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}), "PEM block 1 is not a PKIX public key"},
		{"TruncatedSecondBlock", append(append([]byte{}, rsaPEM...), truncated...), "block 2 is malformed or truncated"},
		{"BadBase64FirstBlock", append(append([]byte{}, badBody...), rsaPEM...), "block 1 is malformed"},
		{"EmptyKidHeader", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Kid": ""}, Bytes: mustDER(t, k.ed1.Public())}), "empty Kid header"},
		{"TwoKidHeaders", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Kid": "a", "kid": "b"}, Bytes: mustDER(t, k.ed1.Public())}), "more than one kid header"},
		{"DuplicateKid", append(append([]byte{}, rsaPEM...), pemKey(t, k.ed1.Public(), "rsa-1")...), `kid "rsa-1" is used by more than one key`},
		{"JSONSyntax", []byte(`{"keys": [`), "JWKS"},
		{"JSONTrailing", []byte(`{"keys": []} {}`), "JWKS"},
		{"NoKeysMember", []byte(`{"kty":"RSA"}`), `no "keys" array`},
		{"NoKeys", jwksBytes(t), "no usable signing keys"},
		{"OnlyEncKeys", jwksBytes(t, enc), `all 1 have a use other than "sig"`},
		{"KtyMissing", jwksBytes(t, rsaKey(func(m map[string]any) { delete(m, "kty") })), "kty missing"},
		{"KtyEC", jwksBytes(t, map[string]any{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "ec"}), `kty "EC" is not supported`},
		{"KtyOct", jwksBytes(t, map[string]any{"kty": "oct", "k": b64(testSecret)}), `kty "oct"`},
		{"RSAAlgRS384", jwksBytes(t, rsaKey(func(m map[string]any) { m["alg"] = "RS384" })), `alg "RS384"`},
		{"RSAPrivate", jwksBytes(t, rsaKey(func(m map[string]any) { m["d"] = b64(k.rsa1.D.Bytes()) })), "private key material"},
		{"RSANMissing", jwksBytes(t, rsaKey(func(m map[string]any) { delete(m, "n") })), `"n" missing`},
		{"RSANPadded", jwksBytes(t, rsaKey(func(m map[string]any) { m["n"] = base64.URLEncoding.EncodeToString(k.rsa1.N.Bytes()) })), `"n" is not unpadded base64url`},
		{"RSAEEven", jwksBytes(t, rsaKey(func(m map[string]any) { m["e"] = b64([]byte{1, 0, 0}) })), "exponent 65536"},
		{"RSAEHuge", jwksBytes(t, rsaKey(func(m map[string]any) { m["e"] = b64([]byte{1, 0, 0, 0, 1}) })), "too large"},
		{"OKPCurveX25519", jwksBytes(t, edKey(func(m map[string]any) { m["crv"] = "X25519" })), `curve "X25519"`},
		{"OKPAlgES256", jwksBytes(t, edKey(func(m map[string]any) { m["alg"] = "ES256" })), `alg "ES256"`},
		{"OKPShortX", jwksBytes(t, edKey(func(m map[string]any) { m["x"] = b64([]byte("short")) })), "5 bytes"},
		{"OKPPrivate", jwksBytes(t, edKey(func(m map[string]any) { m["d"] = b64(k.ed1.Seed()) })), "private key material"},
		{"JWKSDuplicateKid", jwksBytes(t, rsaJWK(&k.rsa1.PublicKey, "same"), edJWK(k.ed1.Public().(ed25519.PublicKey), "same")), `kid "same"`},
		{"TooLarge", append(append([]byte{}, rsaPEM...), make([]byte, MaxPublicKeysFileBytes)...), "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeKeysFile(t, tc.file)
			_, err := NewAuthenticator(Options{PublicKeysFile: path})
			if err == nil {
				t.Fatal("file accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want it to name %s and mention %q", err, path, tc.want)
			}
		})
	}
}

func mustDER(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

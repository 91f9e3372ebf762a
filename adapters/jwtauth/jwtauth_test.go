package jwtauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// fixedNow keeps every test on the same clock so exp/nbf cases are exact.
func fixedNow() time.Time { return time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) }

func newTestAuth(t *testing.T, opts Options) *Authenticator {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	a, err := NewHS256(testSecret, opts)
	if err != nil {
		t.Fatalf("NewHS256: %v", err)
	}
	return a
}

// sign builds a token by hand so tests can produce shapes Issue never would.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// validClaims returns claims Verify accepts under fixedNow, for tests to spoil.
func validClaims(sub uuid.UUID) jwt.MapClaims {
	now := fixedNow()
	return jwt.MapClaims{
		"subscription_id": sub.String(),
		"exp":             now.Add(time.Hour).Unix(),
		"iat":             now.Unix(),
		"nbf":             now.Unix(),
	}
}

// requireUnauthorized checks err is the generic 401 error with a cause for logs.
func requireUnauthorized(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("Verify succeeded, want unauthorized")
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %T %v is not a *domain.Error", err, err)
	}
	if de.Code != domain.CodeUnauthorized {
		t.Fatalf("code = %q, want %q", de.Code, domain.CodeUnauthorized)
	}
	if de.Message != unauthorizedMessage {
		t.Fatalf("message = %q leaks detail, want %q", de.Message, unauthorizedMessage)
	}
	if de.Cause == nil {
		t.Fatal("no Cause recorded for logs")
	}
}

func TestNewHS256(t *testing.T) {
	t.Parallel()

	t.Run("ErrShortSecret", func(t *testing.T) {
		t.Parallel()
		if _, err := NewHS256(testSecret[:31], Options{}); err == nil {
			t.Fatal("31-byte secret accepted")
		}
		if _, err := NewHS256(nil, Options{}); err == nil {
			t.Fatal("nil secret accepted")
		}
	})

	t.Run("ErrNegativeOptions", func(t *testing.T) {
		t.Parallel()
		if _, err := NewHS256(testSecret, Options{Leeway: -time.Second}); err == nil {
			t.Fatal("negative leeway accepted")
		}
		if _, err := NewHS256(testSecret, Options{MaxTokenBytes: -1}); err == nil {
			t.Fatal("negative MaxTokenBytes accepted")
		}
	})

	t.Run("SecretCopied", func(t *testing.T) {
		t.Parallel()
		secret := append([]byte(nil), testSecret...)
		a, err := NewHS256(secret, Options{Now: fixedNow})
		if err != nil {
			t.Fatal(err)
		}
		sub := uuid.New()
		tok := sign(t, jwt.SigningMethodHS256, testSecret, validClaims(sub))
		secret[0] ^= 0xff
		if _, err := a.Verify(context.Background(), tok); err != nil {
			t.Fatalf("changing the caller's slice changed the key: %v", err)
		}
	})
}

func TestVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sub := uuid.New()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		a := newTestAuth(t, Options{})
		got, err := a.Verify(ctx, sign(t, jwt.SigningMethodHS256, testSecret, validClaims(sub)))
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		want := Claims{SubscriptionID: sub, ExpiresAt: fixedNow().Add(time.Hour)}
		if !got.ExpiresAt.Equal(want.ExpiresAt) || got.SubscriptionID != want.SubscriptionID || got.Admin {
			t.Fatalf("claims = %+v, want %+v", got, want)
		}
	})

	t.Run("OKWithinLeeway", func(t *testing.T) {
		t.Parallel()
		a := newTestAuth(t, Options{})
		c := validClaims(sub)
		c["exp"] = fixedNow().Add(-10 * time.Second).Unix()
		c["nbf"] = fixedNow().Add(10 * time.Second).Unix()
		c["iat"] = fixedNow().Add(10 * time.Second).Unix()
		if _, err := a.Verify(ctx, sign(t, jwt.SigningMethodHS256, testSecret, c)); err != nil {
			t.Fatalf("10s skew rejected with 30s default leeway: %v", err)
		}
	})

	t.Run("OKOnlyExpAndSubscription", func(t *testing.T) {
		t.Parallel()
		a := newTestAuth(t, Options{})
		c := jwt.MapClaims{"subscription_id": sub.String(), "exp": fixedNow().Add(time.Minute).Unix()}
		if _, err := a.Verify(ctx, sign(t, jwt.SigningMethodHS256, testSecret, c)); err != nil {
			t.Fatalf("nbf and iat are optional: %v", err)
		}
	})

	// Each case spoils one aspect of an otherwise valid token.
	cases := []struct {
		name   string
		opts   Options
		token  func(t *testing.T) string
		reason error // expected in the Cause chain, when jwt reports it
	}{
		{
			name: "ErrExpired",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["exp"] = fixedNow().Add(-time.Minute).Unix()
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
			reason: jwt.ErrTokenExpired,
		},
		{
			name: "ErrExpiredBeyondCustomLeeway",
			opts: Options{Leeway: time.Second},
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["exp"] = fixedNow().Add(-10 * time.Second).Unix()
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
			reason: jwt.ErrTokenExpired,
		},
		{
			name: "ErrNotYetValid",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["nbf"] = fixedNow().Add(time.Minute).Unix()
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
			reason: jwt.ErrTokenNotValidYet,
		},
		{
			name: "ErrIssuedInFuture",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["iat"] = fixedNow().Add(time.Minute).Unix()
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
			reason: jwt.ErrTokenUsedBeforeIssued,
		},
		{
			name: "ErrMissingExp",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				delete(c, "exp")
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
			reason: jwt.ErrTokenRequiredClaimMissing,
		},
		{
			name: "ErrMissingSubscription",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				delete(c, "subscription_id")
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
		},
		{
			name: "ErrInvalidSubscription",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["subscription_id"] = "not-a-uuid"
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
		},
		{
			name: "ErrSubscriptionNotString",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["subscription_id"] = 42
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
		},
		{
			name: "ErrNilSubscription",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["subscription_id"] = uuid.Nil.String()
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
		},
		{
			name: "ErrAdminNotBool",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["admin"] = "true"
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
		},
		{
			name: "ErrWrongSecret",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!"), validClaims(sub))
			},
			reason: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "ErrAlgNone",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, validClaims(sub))
			},
			reason: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "ErrHS384SameSecret",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodHS384, testSecret, validClaims(sub))
			},
			reason: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "ErrHS512SameSecret",
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodHS512, testSecret, validClaims(sub))
			},
			reason: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "ErrRS256",
			token: func(t *testing.T) string {
				key, err := rsa.GenerateKey(rand.Reader, 2048)
				if err != nil {
					t.Fatal(err)
				}
				return sign(t, jwt.SigningMethodRS256, key, validClaims(sub))
			},
			reason: jwt.ErrTokenSignatureInvalid,
		},
		{
			name: "ErrIssuerMismatch",
			opts: Options{Issuer: "mailgate"},
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["iss"] = "someone-else"
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
			reason: jwt.ErrTokenInvalidIssuer,
		},
		{
			name: "ErrIssuerMissing",
			opts: Options{Issuer: "mailgate"},
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodHS256, testSecret, validClaims(sub))
			},
			reason: jwt.ErrTokenRequiredClaimMissing,
		},
		{
			name: "ErrAudienceMismatch",
			opts: Options{Audience: "mailgate-api"},
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["aud"] = []string{"other-api"}
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
			reason: jwt.ErrTokenInvalidAudience,
		},
		{
			name: "ErrAudienceMissing",
			opts: Options{Audience: "mailgate-api"},
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodHS256, testSecret, validClaims(sub))
			},
			reason: jwt.ErrTokenRequiredClaimMissing,
		},
		{
			name: "ErrOversize",
			token: func(t *testing.T) string {
				c := validClaims(sub)
				c["padding"] = strings.Repeat("x", DefaultMaxTokenBytes)
				return sign(t, jwt.SigningMethodHS256, testSecret, c)
			},
		},
		{
			name: "ErrOversizeCustomLimit",
			opts: Options{MaxTokenBytes: 64},
			token: func(t *testing.T) string {
				return sign(t, jwt.SigningMethodHS256, testSecret, validClaims(sub))
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newTestAuth(t, tc.opts)
			_, err := a.Verify(ctx, tc.token(t))
			requireUnauthorized(t, err)
			if tc.reason != nil && !errors.Is(err, tc.reason) {
				t.Fatalf("cause = %v, want %v", err, tc.reason)
			}
		})
	}

	t.Run("ErrMalformed", func(t *testing.T) {
		t.Parallel()
		a := newTestAuth(t, Options{})
		valid := sign(t, jwt.SigningMethodHS256, testSecret, validClaims(sub))
		parts := strings.Split(valid, ".")
		for _, tok := range []string{
			"",
			"garbage",
			"a.b",
			"a.b.c",
			"a.b.c.d",
			"...",
			"Bearer " + valid,
			parts[0] + "." + parts[1],
			parts[0] + ".!!!." + parts[2],
			"eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24." + parts[2], // payload is not JSON
			valid + "x",
		} {
			_, err := a.Verify(ctx, tok)
			requireUnauthorized(t, err)
		}
	})

	t.Run("ErrOversizeBeforeParsing", func(t *testing.T) {
		t.Parallel()
		a := newTestAuth(t, Options{})
		// Not even a JWT: only the length check can be the reason.
		_, err := a.Verify(ctx, strings.Repeat("a", DefaultMaxTokenBytes+1))
		requireUnauthorized(t, err)
		if !strings.Contains(err.Error(), "limit") {
			t.Fatalf("cause = %v, want the size limit", err)
		}
	})
}

func TestIssue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sub := uuid.New()

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		a := newTestAuth(t, Options{})
		tok, err := a.Issue(sub, time.Hour, false)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("Verify(Issue()): %v", err)
		}
		if got.SubscriptionID != sub || got.Admin || !got.ExpiresAt.Equal(fixedNow().Add(time.Hour)) {
			t.Fatalf("claims = %+v", got)
		}

		// Ordinary tokens carry no admin claim at all, and the header is HS256.
		var raw jwt.MapClaims
		parsed, _, err := jwt.NewParser().ParseUnverified(tok, &raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := raw["admin"]; ok {
			t.Fatalf("non-admin token has admin claim: %v", raw)
		}
		for _, k := range []string{"subscription_id", "exp", "iat", "nbf"} {
			if _, ok := raw[k]; !ok {
				t.Fatalf("claim %q missing: %v", k, raw)
			}
		}
		if parsed.Method.Alg() != "HS256" {
			t.Fatalf("alg = %s", parsed.Method.Alg())
		}
	})

	t.Run("OKAdminRoundTrip", func(t *testing.T) {
		t.Parallel()
		a := newTestAuth(t, Options{})
		tok, err := a.Issue(sub, time.Minute, true)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Verify(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Admin || got.SubscriptionID != sub {
			t.Fatalf("claims = %+v, want admin for %s", got, sub)
		}
	})

	t.Run("OKIssuerAudience", func(t *testing.T) {
		t.Parallel()
		opts := Options{Issuer: "mailgate", Audience: "mailgate-api"}
		a := newTestAuth(t, opts)
		tok, err := a.Issue(sub, time.Minute, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Verify(ctx, tok); err != nil {
			t.Fatalf("own token rejected: %v", err)
		}

		// The same secret configured for another audience must refuse it.
		other := newTestAuth(t, Options{Issuer: "mailgate", Audience: "elsewhere"})
		_, err = other.Verify(ctx, tok)
		requireUnauthorized(t, err)
	})

	t.Run("ErrExpiresWithClock", func(t *testing.T) {
		t.Parallel()
		now := fixedNow()
		issuer := newTestAuth(t, Options{Now: func() time.Time { return now }})
		tok, err := issuer.Issue(sub, time.Minute, false)
		if err != nil {
			t.Fatal(err)
		}
		later := newTestAuth(t, Options{Now: func() time.Time { return now.Add(2 * time.Minute) }})
		_, err = later.Verify(ctx, tok)
		requireUnauthorized(t, err)
		if !errors.Is(err, jwt.ErrTokenExpired) {
			t.Fatalf("cause = %v, want expired", err)
		}
	})

	t.Run("ErrBadArguments", func(t *testing.T) {
		t.Parallel()
		a := newTestAuth(t, Options{})
		if _, err := a.Issue(uuid.Nil, time.Hour, false); err == nil {
			t.Fatal("nil subscription accepted")
		}
		if _, err := a.Issue(sub, 0, false); err == nil {
			t.Fatal("zero ttl accepted")
		}
	})
}

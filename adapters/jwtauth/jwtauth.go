// Package jwtauth verifies and issues the bearer tokens tenants present to the
// API. Tokens are JWTs carrying the tenant's subscription_id; the signing
// algorithm is pinned so a token can never choose how it is checked.
package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// Defaults applied when the corresponding Options field is zero.
const (
	DefaultLeeway        = 30 * time.Second
	DefaultMaxTokenBytes = 8 << 10
	// MinSecretBytes matches the HS256 output size; shorter keys make the MAC
	// easier to brute-force than the hash it is built on.
	MinSecretBytes = 32
)

// unauthorizedMessage is all a caller learns about a rejected token, so the
// API cannot be used as an oracle for which check failed.
const unauthorizedMessage = "invalid or expired token"

// Claims is what a verified token says about its bearer.
type Claims struct {
	// SubscriptionID is the tenant the token acts for.
	SubscriptionID uuid.UUID
	// Admin grants the operator endpoints.
	Admin bool
	// ExpiresAt is the token's exp claim.
	ExpiresAt time.Time
}

// Options tunes verification and issuing; the zero value is usable.
type Options struct {
	// Issuer, when non-empty, is written as iss and required on verification.
	Issuer string
	// Audience, when non-empty, is written as aud and required on verification.
	Audience string
	// Leeway absorbs clock skew on exp, nbf and iat; zero means DefaultLeeway.
	Leeway time.Duration
	// MaxTokenBytes caps the token length checked before any decoding, so a
	// huge header cannot make us base64- and JSON-decode megabytes; zero means
	// DefaultMaxTokenBytes.
	MaxTokenBytes int
	// Now replaces the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// wireClaims is the JSON shape of a Mailgate token.
type wireClaims struct {
	jwt.RegisteredClaims
	// SubscriptionID stays a string here so a malformed value is reported as
	// such by our own check rather than as an opaque JSON error.
	SubscriptionID string `json:"subscription_id,omitempty"`
	Admin          bool   `json:"admin,omitempty"`
}

// Authenticator verifies tokens and issues them for the CLI and `mailgate dev`.
type Authenticator struct {
	parser *jwt.Parser
	// keyFor returns the key that must have signed a token. It sees the token
	// before the signature is checked, so it may only use the header to pick
	// a key; RS256/EdDSA keys selected by kid will plug in here without
	// changing Verify.
	keyFor        jwt.Keyfunc
	signingMethod jwt.SigningMethod
	signingKey    any
	issuer        string
	audience      string
	maxTokenBytes int
	now           func() time.Time
}

// NewHS256 returns an Authenticator that signs and verifies with the shared
// secret using HS256 only. The secret is copied.
func NewHS256(secret []byte, opts Options) (*Authenticator, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("jwtauth: HS256 secret is %d bytes, need at least %d", len(secret), MinSecretBytes)
	}
	key := append([]byte(nil), secret...)
	method := jwt.SigningMethodHS256
	keyFor := func(t *jwt.Token) (any, error) {
		// The parser already enforces the allowed algorithms; checking the
		// concrete method again guards against a future change to that list
		// handing the HMAC secret to a verifier of another kind.
		if t.Method != method {
			return nil, fmt.Errorf("unexpected signing method %q", t.Method.Alg())
		}
		return key, nil
	}
	return newAuthenticator(opts, []string{method.Alg()}, keyFor, method, key)
}

func newAuthenticator(opts Options, algs []string, keyFor jwt.Keyfunc, method jwt.SigningMethod, signingKey any) (*Authenticator, error) {
	if opts.Leeway < 0 {
		return nil, fmt.Errorf("jwtauth: negative leeway %s", opts.Leeway)
	}
	if opts.MaxTokenBytes < 0 {
		return nil, fmt.Errorf("jwtauth: negative MaxTokenBytes %d", opts.MaxTokenBytes)
	}
	if opts.Leeway == 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.MaxTokenBytes == 0 {
		opts.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}

	parserOpts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithTimeFunc(opts.Now),
	}
	if opts.Issuer != "" {
		parserOpts = append(parserOpts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		parserOpts = append(parserOpts, jwt.WithAudience(opts.Audience))
	}

	return &Authenticator{
		parser:        jwt.NewParser(parserOpts...),
		keyFor:        keyFor,
		signingMethod: method,
		signingKey:    signingKey,
		issuer:        opts.Issuer,
		audience:      opts.Audience,
		maxTokenBytes: opts.MaxTokenBytes,
		now:           opts.Now,
	}, nil
}

// Verify checks token's signature and claims and returns what it grants.
// Every failure is a domain.Error with CodeUnauthorized and the same short
// message; the specific reason is in its Cause, for logs. ctx is accepted now
// so that key sources needing I/O can be added without changing callers.
func (a *Authenticator) Verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > a.maxTokenBytes {
		return Claims{}, unauthorized(fmt.Errorf("token is %d bytes, limit is %d", len(token), a.maxTokenBytes))
	}
	if token == "" {
		return Claims{}, unauthorized(errors.New("empty token"))
	}

	var wc wireClaims
	if _, err := a.parser.ParseWithClaims(token, &wc, a.keyFor); err != nil {
		return Claims{}, unauthorized(err)
	}

	if wc.SubscriptionID == "" {
		return Claims{}, unauthorized(errors.New("subscription_id claim missing"))
	}
	sub, err := uuid.Parse(wc.SubscriptionID)
	if err != nil {
		return Claims{}, unauthorized(fmt.Errorf("subscription_id claim: %w", err))
	}
	if sub == uuid.Nil {
		return Claims{}, unauthorized(errors.New("subscription_id claim is the nil UUID"))
	}

	// The parser has already required exp, so ExpiresAt is non-nil here.
	return Claims{
		SubscriptionID: sub,
		Admin:          wc.Admin,
		ExpiresAt:      wc.ExpiresAt.Time,
	}, nil
}

// Issue signs a token for subscription valid for ttl from now; admin adds the
// admin claim, which is omitted otherwise so ordinary tokens stay minimal.
func (a *Authenticator) Issue(subscription uuid.UUID, ttl time.Duration, admin bool) (string, error) {
	if subscription == uuid.Nil {
		return "", errors.New("jwtauth: cannot issue a token for the nil subscription")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("jwtauth: token lifetime must be positive, got %s", ttl)
	}
	now := a.now()
	wc := wireClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    a.issuer,
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
		},
		SubscriptionID: subscription.String(),
		Admin:          admin,
	}
	if a.audience != "" {
		wc.Audience = jwt.ClaimStrings{a.audience}
	}
	signed, err := jwt.NewWithClaims(a.signingMethod, wc).SignedString(a.signingKey)
	if err != nil {
		return "", fmt.Errorf("jwtauth: sign token: %w", err)
	}
	return signed, nil
}

// unauthorized hides cause behind the generic message the API may show.
func unauthorized(cause error) error {
	e := domain.Errorf(domain.CodeUnauthorized, unauthorizedMessage)
	e.Cause = cause
	return e
}

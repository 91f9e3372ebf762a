// Package jwtauth verifies and issues the bearer tokens tenants present to the
// API. Tokens are JWTs carrying the tenant's subscription_id. One
// Authenticator may hold an HS256 secret, which it also signs with, and a set
// of RSA and Ed25519 public keys read from a file, which it only verifies
// with. The algorithm is pinned per key, so a token can never choose how it
// is checked.
package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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

// Options configures an Authenticator. At least one of HS256Secret and
// PublicKeysFile must be set; the other fields may be left zero.
type Options struct {
	// HS256Secret, when non-empty, verifies HS256 tokens and signs the ones
	// Issue returns. It must be at least MinSecretBytes long and is copied.
	HS256Secret []byte
	// PublicKeysFile, when non-empty, names a file of RSA and Ed25519 public
	// keys that verify RS256 and EdDSA tokens: PKIX "PUBLIC KEY" PEM blocks,
	// each optionally with a "Kid: id" header, or a JWKS JSON document. A key
	// without a kid is known by its RFC 7638 thumbprint. Reload re-reads it.
	PublicKeysFile string
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
// It is safe for concurrent use, including Verify during Reload.
type Authenticator struct {
	parser *jwt.Parser
	// secret is nil when HS256 is not configured.
	secret []byte
	// keysFile is empty when no public keys are configured; keys is then nil.
	keysFile string
	keys     atomic.Pointer[keySet]
	// verified remembers tokens that passed (verified_cache.go); Reload
	// replaces it after installing the new keys.
	verified atomic.Pointer[verifiedCache]
	// reloadMu orders concurrent reloads so the last file read is the one
	// that stays installed.
	reloadMu sync.Mutex

	issuer        string
	audience      string
	maxTokenBytes int
	now           func() time.Time
}

// NewAuthenticator returns an Authenticator for opts, loading the public keys
// file if one is named. It fails if neither a secret nor a keys file is
// given, or if the keys file cannot be used.
func NewAuthenticator(opts Options) (*Authenticator, error) {
	if len(opts.HS256Secret) == 0 && opts.PublicKeysFile == "" {
		return nil, errors.New("jwtauth: need an HS256 secret, a public keys file, or both")
	}
	if len(opts.HS256Secret) > 0 && len(opts.HS256Secret) < MinSecretBytes {
		return nil, fmt.Errorf("jwtauth: HS256 secret is %d bytes, need at least %d", len(opts.HS256Secret), MinSecretBytes)
	}
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

	a := &Authenticator{
		keysFile:      opts.PublicKeysFile,
		issuer:        opts.Issuer,
		audience:      opts.Audience,
		maxTokenBytes: opts.MaxTokenBytes,
		now:           opts.Now,
	}
	a.verified.Store(newVerifiedCache())
	// The parser's list is a first filter; keyFor still checks each token's
	// algorithm against the key it selects.
	var algs []string
	if len(opts.HS256Secret) > 0 {
		a.secret = append([]byte(nil), opts.HS256Secret...)
		algs = append(algs, jwt.SigningMethodHS256.Alg())
	}
	if a.keysFile != "" {
		ks, err := loadKeySet(a.keysFile)
		if err != nil {
			return nil, err
		}
		a.keys.Store(ks)
		algs = append(algs, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodEdDSA.Alg())
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
	a.parser = jwt.NewParser(parserOpts...)
	return a, nil
}

// NewHS256 returns an Authenticator that signs and verifies with the shared
// secret, which replaces opts.HS256Secret. It is NewAuthenticator for callers
// that only have a secret; a PublicKeysFile in opts is still loaded.
func NewHS256(secret []byte, opts Options) (*Authenticator, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("jwtauth: HS256 secret is %d bytes, need at least %d", len(secret), MinSecretBytes)
	}
	opts.HS256Secret = secret
	return NewAuthenticator(opts)
}

// keyFor returns the key that must have signed t. It runs before the
// signature is checked, so it may use only the header, and it never uses key
// material the token carries (jwk, jku, x5c): keys come from configuration.
func (a *Authenticator) keyFor(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 requires rejecting extensions we do not understand, and we
		// understand none.
		return nil, errors.New("crit header is not supported")
	}
	kid, err := headerKID(t.Header)
	if err != nil {
		return nil, err
	}

	if t.Method == jwt.SigningMethodHS256 {
		if a.secret == nil {
			return nil, errors.New("HS256 token but no secret is configured")
		}
		// The secret has no id, so an HS256 token's kid is ignored unless it
		// names a public key: that is a token claiming a key of another type.
		if kid != "" {
			if ks := a.keys.Load(); ks != nil {
				if k, ok := ks.byKID[kid]; ok {
					return nil, fmt.Errorf("HS256 token names kid %q, a %s key", kid, k.method.Alg())
				}
			}
		}
		return a.secret, nil
	}

	ks := a.keys.Load()
	if ks == nil {
		return nil, fmt.Errorf("%s token but no public keys are configured", t.Method.Alg())
	}
	if kid == "" {
		return nil, fmt.Errorf("%s token without a kid", t.Method.Alg())
	}
	k, ok := ks.byKID[kid]
	if !ok {
		return nil, fmt.Errorf("unknown kid %q", kid)
	}
	if t.Method != k.method {
		return nil, fmt.Errorf("%s token names kid %q, which is a %s key", t.Method.Alg(), kid, k.method.Alg())
	}
	return k.key, nil
}

// headerKID returns the kid header, "" when absent.
func headerKID(h map[string]any) (string, error) {
	v, ok := h["kid"]
	if !ok {
		return "", nil
	}
	kid, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("kid header is %T, not a string", v)
	}
	return kid, nil
}

// Verify checks token's signature and claims and returns what it grants.
// Every failure is a domain.Error with CodeUnauthorized and the same short
// message; the specific reason is in its Cause, for logs. ctx is accepted so
// that key sources needing I/O can be added without changing callers.
func (a *Authenticator) Verify(ctx context.Context, token string) (Claims, error) {
	if len(token) > a.maxTokenBytes {
		return Claims{}, unauthorized(fmt.Errorf("token is %d bytes, limit is %d", len(token), a.maxTokenBytes))
	}
	if token == "" {
		return Claims{}, unauthorized(errors.New("empty token"))
	}

	// The cache is taken before the keys: one installed by a Reload is
	// only ever filled by verifications against the keys installed first.
	cache, digest, now := a.verified.Load(), tokenDigest(token), a.now()
	if claims, ok := cache.get(digest, now); ok {
		return claims, nil
	}
	claims, err := a.verify(token)
	if err != nil {
		return Claims{}, err
	}
	cache.put(digest, claims, now)
	return claims, nil
}

// verify parses and checks token.
func (a *Authenticator) verify(token string) (Claims, error) {
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

// Issue signs an HS256 token for subscription valid for ttl from now; admin
// adds the admin claim, which is omitted otherwise so ordinary tokens stay
// minimal. It needs the HS256 secret: public keys can only verify.
func (a *Authenticator) Issue(subscription uuid.UUID, ttl time.Duration, admin bool) (string, error) {
	if a.secret == nil {
		return "", errors.New("jwtauth: cannot issue tokens without an HS256 secret; public keys only verify")
	}
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
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, wc).SignedString(a.secret)
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

package domain

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"

	"github.com/google/uuid"
)

// TokenPurpose separates the address tokens of bounces from those of
// replies, so a token minted for one can't be replayed as the other.
type TokenPurpose string

// The token purposes.
const (
	PurposeBounce TokenPurpose = "bounce"
	PurposeReply  TokenPurpose = "reply"
)

// MinTokenKeyBytes is the shortest key that may sign address tokens.
const MinTokenKeyBytes = 32

// tokenMACBytes is the truncated HMAC kept in a token: 80 bits make a
// forgery a 2^80 guess while the address stays under RFC 5321's 64-octet
// local part.
const tokenMACBytes = 10

// tokenEncoding is lower-case base32 without padding: address local parts
// are case-preserving in theory, but some relays lower-case them.
var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding) //nolint:gochecknoglobals // read-only: an encoding, safe for concurrent use

// AddressTokens mints and checks the authenticated tokens in return-path and
// reply addresses. The first key signs; every key verifies, so a key is
// rotated by putting the new one first and dropping the old one once mail
// signed with it can no longer bounce (a few days).
type AddressTokens struct {
	keys [][]byte
}

// NewAddressTokens checks the keys (at least one, each MinTokenKeyBytes long).
func NewAddressTokens(keys [][]byte) (*AddressTokens, error) {
	if len(keys) == 0 {
		return nil, errors.New("no address token key")
	}
	for _, k := range keys {
		if len(k) < MinTokenKeyBytes {
			return nil, errors.New("each address token key must be at least 32 bytes")
		}
	}
	return &AddressTokens{keys: keys}, nil
}

// Mint returns the token naming id for purpose.
func (t *AddressTokens) Mint(purpose TokenPurpose, id uuid.UUID) string {
	raw := append(id[:], tokenMAC(t.keys[0], purpose, id)...)
	return tokenEncoding.EncodeToString(raw)
}

// Verify returns the id a token names when one of the keys signed it for purpose.
func (t *AddressTokens) Verify(purpose TokenPurpose, token string) (uuid.UUID, bool) {
	token = strings.ToLower(token)
	raw, err := tokenEncoding.DecodeString(token)
	if err != nil || len(raw) != len(uuid.UUID{})+tokenMACBytes {
		return uuid.Nil, false
	}
	if tokenEncoding.EncodeToString(raw) != token {
		// base32 ignores the unused low bits of the last character, so
		// several strings decode alike; only the one Mint writes is a token.
		return uuid.Nil, false
	}
	id, err := uuid.FromBytes(raw[:16])
	if err != nil {
		return uuid.Nil, false
	}
	for _, k := range t.keys {
		if hmac.Equal(raw[16:], tokenMAC(k, purpose, id)) {
			return id, true
		}
	}
	return uuid.Nil, false
}

func tokenMAC(key []byte, purpose TokenPurpose, id uuid.UUID) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("mailgate-address-token\x00" + string(purpose) + "\x00"))
	mac.Write(id[:])
	return mac.Sum(nil)[:tokenMACBytes]
}

// TokenAddress is prefix+token@domain.
func TokenAddress(prefix, token, domainName string) string {
	return prefix + "+" + token + "@" + domainName
}

// SplitTokenAddress takes prefix+token@domain apart; ok is false for any
// other shape. The domain comes back lower-cased.
func SplitTokenAddress(addr string) (prefix, token, domainName string, ok bool) {
	addr = strings.Trim(strings.TrimSpace(addr), "<>")
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", "", "", false
	}
	local := addr[:at]
	plus := strings.IndexByte(local, '+')
	if plus <= 0 || plus == len(local)-1 {
		return "", "", "", false
	}
	return local[:plus], local[plus+1:], strings.ToLower(addr[at+1:]), true
}

// InboundAddresses builds the envelope sender and Reply-To of outgoing mail
// when the gateway receives its own bounces and replies. The zero
// BounceDomain leaves the envelope as the sender's address; the zero
// ReplyDomain leaves Reply-To out.
type InboundAddresses struct {
	Tokens       *AddressTokens
	BounceDomain string
	BouncePrefix string
	ReplyDomain  string
	ReplyPrefix  string
}

// ReturnPath is the MAIL FROM for msg: a VERP address naming the message,
// at the tenant's custom return-path domain when it has one. One SMTP
// transaction carries every recipient of a message, so the token names the
// message, and the bounced recipient is read from the DSN's
// Final-Recipient/Original-Recipient and matched against the message's own
// recipients.
func (a *InboundAddresses) ReturnPath(msg *Message, dc DeliveryContext) string {
	if a == nil || a.Tokens == nil || a.BounceDomain == "" {
		return msg.SenderEmail
	}
	d := a.BounceDomain
	if dc.ReturnPathDomain != "" {
		d = dc.ReturnPathDomain
	}
	return TokenAddress(a.BouncePrefix, a.Tokens.Mint(PurposeBounce, msg.ID), d)
}

// ReplyTo is the Reply-To for msg when its tenant routes replies back to
// the gateway, "" otherwise.
func (a *InboundAddresses) ReplyTo(msg *Message, dc DeliveryContext) string {
	if a == nil || a.Tokens == nil || a.ReplyDomain == "" || !dc.ReplyRouting {
		return ""
	}
	return TokenAddress(a.ReplyPrefix, a.Tokens.Mint(PurposeReply, msg.ID), a.ReplyDomain)
}

package domain_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

var (
	keyOld = []byte("old-key-0123456789-0123456789-0123456789")
	keyNew = []byte("new-key-0123456789-0123456789-0123456789")
)

func TestAddressTokens(t *testing.T) {
	t.Parallel()
	id := uuid.New()
	old, err := domain.NewAddressTokens([][]byte{keyOld})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := domain.NewAddressTokens([][]byte{keyNew, keyOld})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("OK", func(t *testing.T) {
		token := rotated.Mint(domain.PurposeBounce, id)
		if got, ok := rotated.Verify(domain.PurposeBounce, token); !ok || got != id {
			t.Fatalf("Verify(%q) = %v, %v", token, got, ok)
		}
		// Relays may lower- or upper-case a local part.
		if got, ok := rotated.Verify(domain.PurposeBounce, strings.ToUpper(token)); !ok || got != id {
			t.Fatalf("upper-cased token refused")
		}
		local := "bounce+" + token
		if len(local) > 64 {
			t.Fatalf("local part %q is %d octets, RFC 5321 allows 64", local, len(local))
		}
	})
	t.Run("RotationAcceptsOldKey", func(t *testing.T) {
		token := old.Mint(domain.PurposeBounce, id)
		if got, ok := rotated.Verify(domain.PurposeBounce, token); !ok || got != id {
			t.Fatalf("a token of the previous key must verify after rotation")
		}
		if _, ok := old.Verify(domain.PurposeBounce, rotated.Mint(domain.PurposeBounce, id)); ok {
			t.Fatalf("a token of a key the verifier does not hold verified")
		}
	})
	t.Run("ErrForged", func(t *testing.T) {
		token := rotated.Mint(domain.PurposeBounce, id)
		other := uuid.New()
		forged := rotated.Mint(domain.PurposeBounce, other)
		// The id of one token with the MAC of another.
		spliced := forged[:26] + token[26:]
		for _, bad := range []string{"", "x", spliced, token[:len(token)-1], token + "a", strings.Repeat("a", len(token)), "!!!" + token[3:]} {
			if got, ok := rotated.Verify(domain.PurposeBounce, bad); ok {
				t.Errorf("Verify(%q) accepted as %v", bad, got)
			}
		}
	})
	t.Run("ErrWrongPurpose", func(t *testing.T) {
		if _, ok := rotated.Verify(domain.PurposeReply, rotated.Mint(domain.PurposeBounce, id)); ok {
			t.Fatalf("a bounce token verified as a reply token")
		}
	})
	t.Run("ErrShortKey", func(t *testing.T) {
		if _, err := domain.NewAddressTokens([][]byte{[]byte("short")}); err == nil {
			t.Fatalf("a short key was accepted")
		}
		if _, err := domain.NewAddressTokens(nil); err == nil {
			t.Fatalf("no key was accepted")
		}
	})
}

func TestInboundAddresses(t *testing.T) {
	t.Parallel()
	tokens, err := domain.NewAddressTokens([][]byte{keyNew})
	if err != nil {
		t.Fatal(err)
	}
	msg := &domain.Message{ID: uuid.New(), SenderEmail: "ann@tenant.example"}
	a := &domain.InboundAddresses{Tokens: tokens, BounceDomain: "bounces.gw.example", BouncePrefix: "bounce", ReplyDomain: "reply.gw.example", ReplyPrefix: "reply"}

	rp := a.ReturnPath(msg, domain.DeliveryContext{})
	prefix, token, d, ok := domain.SplitTokenAddress(rp)
	if !ok || prefix != "bounce" || d != "bounces.gw.example" {
		t.Fatalf("return path %q", rp)
	}
	if id, ok := tokens.Verify(domain.PurposeBounce, token); !ok || id != msg.ID {
		t.Fatalf("return path token does not name the message")
	}
	if rp := a.ReturnPath(msg, domain.DeliveryContext{ReturnPathDomain: "rp.tenant.example"}); !strings.HasSuffix(rp, "@rp.tenant.example") {
		t.Fatalf("custom return-path domain not used: %q", rp)
	}
	if got := a.ReplyTo(msg, domain.DeliveryContext{}); got != "" {
		t.Fatalf("Reply-To without the tenant's switch: %q", got)
	}
	if got := a.ReplyTo(msg, domain.DeliveryContext{ReplyRouting: true}); !strings.HasPrefix(got, "reply+") || !strings.HasSuffix(got, "@reply.gw.example") {
		t.Fatalf("Reply-To %q", got)
	}
	var none *domain.InboundAddresses
	if got := none.ReturnPath(msg, domain.DeliveryContext{ReturnPathDomain: "rp.tenant.example"}); got != msg.SenderEmail {
		t.Fatalf("without a bounce domain the envelope sender must stay the sender, got %q", got)
	}
	if got := none.ReplyTo(msg, domain.DeliveryContext{ReplyRouting: true}); got != "" {
		t.Fatalf("without a reply domain no Reply-To, got %q", got)
	}
	for _, bad := range []string{"plain@x.example", "+tok@x.example", "p+@x.example", "p+tok@", "p+tok"} {
		if _, _, _, ok := domain.SplitTokenAddress(bad); ok {
			t.Errorf("SplitTokenAddress(%q) accepted", bad)
		}
	}
}

func TestAddressTokensRefuseAliases(t *testing.T) {
	tokens, err := domain.NewAddressTokens([][]byte{[]byte("a-key-of-at-least-thirty-two-bytes-0123")})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	token := tokens.Mint(domain.PurposeBounce, id)
	if got, ok := tokens.Verify(domain.PurposeBounce, token); !ok || got != id {
		t.Fatalf("Verify(Mint) = %v, %v", got, ok)
	}
	// 26 bytes are 208 bits, 42 characters of 5 bits: the last character's
	// two low bits are unused, so it has aliases that decode alike.
	alphabet := "abcdefghijklmnopqrstuvwxyz234567"
	last := strings.IndexByte(alphabet, token[len(token)-1])
	for unused := 1; unused < 4; unused++ {
		alias := token[:len(token)-1] + string(alphabet[last^unused])
		if _, ok := tokens.Verify(domain.PurposeBounce, alias); ok {
			t.Errorf("alias %q of %q verifies", alias, token)
		}
	}
}

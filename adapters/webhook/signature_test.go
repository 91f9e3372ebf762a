package webhook_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mailgate/mailgate/adapters/webhook"
)

func TestSign(t *testing.T) {
	t.Parallel()
	// Independently computed: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
	got := webhook.Sign([]byte("secret"), 1700000000, []byte(`{"a":1}`))
	const want = "49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	secret := []byte("current-secret")
	previous := []byte("previous-secret")
	body := []byte(`{"type":"message.sent","id":"evt_1"}`)
	now := time.Unix(1700000000, 0)
	ts := now.Unix()
	header := func(secrets ...[]byte) string {
		h := fmt.Sprintf("t=%d", ts)
		for _, s := range secrets {
			h += ",v1=" + webhook.Sign(s, ts, body)
		}
		return h
	}

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		if err := webhook.Verify(header(secret), secret, body, now, time.Minute); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("OKTwoSecrets", func(t *testing.T) {
		t.Parallel()
		h := header(secret, previous)
		for _, s := range [][]byte{secret, previous} {
			if err := webhook.Verify(h, s, body, now, time.Minute); err != nil {
				t.Errorf("Verify with %q: %v", s, err)
			}
		}
		err := webhook.Verify(h, []byte("other"), body, now, time.Minute)
		if !errors.Is(err, webhook.ErrSignatureMismatch) {
			t.Errorf("Verify with unrelated secret = %v, want ErrSignatureMismatch", err)
		}
	})
	t.Run("OKWithinTolerance", func(t *testing.T) {
		t.Parallel()
		for _, skew := range []time.Duration{-time.Minute, time.Minute} {
			if err := webhook.Verify(header(secret), secret, body, now.Add(skew), time.Minute); err != nil {
				t.Errorf("skew %s: %v", skew, err)
			}
		}
	})
	t.Run("OKSpacesAndUnknownEntries", func(t *testing.T) {
		t.Parallel()
		h := fmt.Sprintf("t=%d, v0=abc, v1=%s", ts, webhook.Sign(secret, ts, body))
		if err := webhook.Verify(h, secret, body, now, time.Minute); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrTamperedBody", func(t *testing.T) {
		t.Parallel()
		tampered := []byte(`{"type":"message.sent","id":"evt_2"}`)
		err := webhook.Verify(header(secret, previous), secret, tampered, now, time.Minute)
		if !errors.Is(err, webhook.ErrSignatureMismatch) {
			t.Fatalf("Verify = %v, want ErrSignatureMismatch", err)
		}
	})
	t.Run("ErrTamperedTimestamp", func(t *testing.T) {
		t.Parallel()
		h := fmt.Sprintf("t=%d,v1=%s", ts+1, webhook.Sign(secret, ts, body))
		err := webhook.Verify(h, secret, body, now, time.Minute)
		if !errors.Is(err, webhook.ErrSignatureMismatch) {
			t.Fatalf("Verify = %v, want ErrSignatureMismatch", err)
		}
	})
	t.Run("ErrOldTimestamp", func(t *testing.T) {
		t.Parallel()
		err := webhook.Verify(header(secret), secret, body, now.Add(10*time.Minute), 5*time.Minute)
		if !errors.Is(err, webhook.ErrTimestampOutOfTolerance) {
			t.Fatalf("Verify = %v, want ErrTimestampOutOfTolerance", err)
		}
	})
	t.Run("ErrFutureTimestamp", func(t *testing.T) {
		t.Parallel()
		err := webhook.Verify(header(secret), secret, body, now.Add(-10*time.Minute), 5*time.Minute)
		if !errors.Is(err, webhook.ErrTimestampOutOfTolerance) {
			t.Fatalf("Verify = %v, want ErrTimestampOutOfTolerance", err)
		}
	})
	t.Run("ErrDefaultTolerance", func(t *testing.T) {
		t.Parallel()
		err := webhook.Verify(header(secret), secret, body, now.Add(webhook.DefaultTolerance+time.Second), 0)
		if !errors.Is(err, webhook.ErrTimestampOutOfTolerance) {
			t.Fatalf("Verify = %v, want ErrTimestampOutOfTolerance", err)
		}
	})
	t.Run("ErrMalformed", func(t *testing.T) {
		t.Parallel()
		sig := webhook.Sign(secret, ts, body)
		for _, h := range []string{
			"",
			"v1=" + sig,
			fmt.Sprintf("t=%d", ts),
			fmt.Sprintf("t=%d,t=%d,v1=%s", ts, ts, sig),
			"t=abc,v1=" + sig,
			"t=-5,v1=" + sig,
			fmt.Sprintf("t=%d,v1=zz", ts),
			fmt.Sprintf("t=%d,v1=%s", ts, sig[:62]),
			fmt.Sprintf("t=%d,garbage,v1=%s", ts, sig),
		} {
			err := webhook.Verify(h, secret, body, now, time.Minute)
			if !errors.Is(err, webhook.ErrMalformedSignature) {
				t.Errorf("Verify(%q) = %v, want ErrMalformedSignature", h, err)
			}
		}
	})
	t.Run("ErrEmptySecret", func(t *testing.T) {
		t.Parallel()
		if err := webhook.Verify(header([]byte{}), nil, body, now, time.Minute); err == nil {
			t.Fatal("Verify with an empty secret succeeded")
		}
	})
}

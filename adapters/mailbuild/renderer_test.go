package mailbuild_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/domain"
)

// dkimKeyFor returns a stored-key value for alg under the test domain and
// selector, and the TXT record that verifies it.
func dkimKeyFor(t *testing.T, alg mailbuild.DKIMAlgorithm, privatePEM []byte) (*domain.DKIMKey, string) {
	t.Helper()
	record, err := mailbuild.DKIMRecord(privatePEM)
	if err != nil {
		t.Fatalf("DKIMRecord: %v", err)
	}
	return &domain.DKIMKey{Domain: testDomain, Selector: testSelector, Algorithm: string(alg), PrivateKey: privatePEM}, record
}

func freshKey(t *testing.T, alg mailbuild.DKIMAlgorithm) []byte {
	t.Helper()
	privatePEM, err := mailbuild.GenerateDKIMKey(alg)
	if err != nil {
		t.Fatalf("GenerateDKIMKey: %v", err)
	}
	return privatePEM
}

func render(t *testing.T, r *mailbuild.Renderer, key *domain.DKIMKey) []byte {
	t.Helper()
	out, err := r.Render(newMessage(), testDate, nil, key, false)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return out
}

func TestRenderer(t *testing.T) {
	t.Parallel()

	t.Run("OK/UnsignedIsBuild", func(t *testing.T) {
		t.Parallel()
		got := render(t, mailbuild.NewRenderer(), nil)
		if want := build(t, newMessage()); !bytes.Equal(got, want) {
			t.Fatalf("Render without a key differs from Build:\n%s\nwant:\n%s", got, want)
		}
	})

	for _, alg := range algorithms {
		t.Run("OK/SignedVerifies/"+string(alg), func(t *testing.T) {
			t.Parallel()
			key, record := dkimKeyFor(t, alg, testKey(t, alg))
			signed := render(t, mailbuild.NewRenderer(), key)
			if v := verify(t, signed, record); v.Err != nil {
				t.Fatalf("signature does not verify: %v", v.Err)
			}
			if body := build(t, newMessage()); !bytes.HasSuffix(signed, body) {
				t.Fatal("the signed message is not the built message with a signature prepended")
			}
		})
	}

	t.Run("OK/KeyParsedOnce", func(t *testing.T) {
		t.Parallel()
		r := mailbuild.NewRenderer()
		key, _ := dkimKeyFor(t, mailbuild.Ed25519SHA256, testKey(t, mailbuild.Ed25519SHA256))
		for range 3 {
			render(t, r, key)
		}
		// The same key read again from the store is a new value with equal bytes.
		again := *key
		again.PrivateKey = bytes.Clone(key.PrivateKey)
		render(t, r, &again)
		if n := r.CachedSigners(); n != 1 {
			t.Fatalf("%d signers cached for one key, want 1", n)
		}
	})

	t.Run("OK/RotatedKeySignsWithTheNewKey", func(t *testing.T) {
		t.Parallel()
		r := mailbuild.NewRenderer()
		oldKey, _ := dkimKeyFor(t, mailbuild.Ed25519SHA256, testKey(t, mailbuild.Ed25519SHA256))
		render(t, r, oldKey)
		newKey, newRecord := dkimKeyFor(t, mailbuild.Ed25519SHA256, freshKey(t, mailbuild.Ed25519SHA256))
		if v := verify(t, render(t, r, newKey), newRecord); v.Err != nil {
			t.Fatalf("after a rotation under the same selector the old key still signs: %v", v.Err)
		}
		if n := r.CachedSigners(); n != 2 {
			t.Fatalf("%d signers cached, want 2", n)
		}
	})

	t.Run("OK/CacheIsBounded", func(t *testing.T) {
		t.Parallel()
		const limit = 2
		r := mailbuild.NewRendererWithLimit(limit)
		for i := range limit + 3 {
			key, record := dkimKeyFor(t, mailbuild.Ed25519SHA256, freshKey(t, mailbuild.Ed25519SHA256))
			if v := verify(t, render(t, r, key), record); v.Err != nil {
				t.Fatalf("key %d: %v", i, v.Err)
			}
			if n := r.CachedSigners(); n > limit {
				t.Fatalf("after %d keys the cache holds %d signers, the bound is %d", i+1, n, limit)
			}
		}
	})

	t.Run("OK/Concurrent", func(t *testing.T) {
		t.Parallel()
		r := mailbuild.NewRendererWithLimit(2)
		type signing struct {
			key    *domain.DKIMKey
			record string
		}
		var keys []signing
		for range 3 {
			key, record := dkimKeyFor(t, mailbuild.Ed25519SHA256, freshKey(t, mailbuild.Ed25519SHA256))
			keys = append(keys, signing{key, record})
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8*len(keys))
		for g := range 8 {
			wg.Go(func() {
				for i := range len(keys) * 4 {
					k := keys[(g+i)%len(keys)]
					out, err := r.Render(newMessage(), testDate, nil, k.key, false)
					if err != nil {
						errs <- err
						return
					}
					verifs, err := msgauth.VerifyWithOptions(bytes.NewReader(out), &msgauth.VerifyOptions{LookupTXT: lookupFor(k.record)})
					if err == nil && (len(verifs) != 1 || verifs[0].Err != nil) {
						err = fmt.Errorf("signature with key %d does not verify: %v", (g+i)%len(keys), verifs)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("ErrInvalidKey", func(t *testing.T) {
		t.Parallel()
		key := &domain.DKIMKey{Domain: testDomain, Selector: testSelector, PrivateKey: []byte("not a key")}
		_, err := mailbuild.NewRenderer().Render(newMessage(), testDate, nil, key, false)
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.CodeInvalid || de.Field != "private_key" {
			t.Fatalf("got %v, want an invalid private_key error", err)
		}
		if !strings.Contains(err.Error(), "DKIM key of "+testDomain) {
			t.Fatalf("error %q does not name the key's domain", err)
		}
	})

	t.Run("ErrBuild", func(t *testing.T) {
		t.Parallel()
		key, _ := dkimKeyFor(t, mailbuild.Ed25519SHA256, testKey(t, mailbuild.Ed25519SHA256))
		msg := newMessage(func(m *domain.Message) { m.SenderEmail = "" })
		if out, err := mailbuild.NewRenderer().Render(msg, testDate, nil, key, false); err == nil {
			t.Fatalf("a message without a sender rendered:\n%s", out)
		}
	})
}

// BenchmarkRenderSigned compares signing with the Renderer, which parses each
// key once, against parsing the key for every message.
func BenchmarkRenderSigned(b *testing.B) {
	for _, alg := range algorithms {
		privatePEM, err := mailbuild.GenerateDKIMKey(alg)
		if err != nil {
			b.Fatal(err)
		}
		key := &domain.DKIMKey{Domain: testDomain, Selector: testSelector, Algorithm: string(alg), PrivateKey: privatePEM}
		b.Run(string(alg)+"/renderer", func(b *testing.B) {
			r := mailbuild.NewRenderer()
			for b.Loop() {
				if _, err := r.Render(newMessage(), testDate, nil, key, false); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(string(alg)+"/parse-per-message", func(b *testing.B) {
			for b.Loop() {
				data, err := mailbuild.Build(newMessage(), mailbuild.Options{Date: testDate})
				if err != nil {
					b.Fatal(err)
				}
				s, err := mailbuild.NewDKIMSigner(key.Domain, key.Selector, key.PrivateKey)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Sign(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

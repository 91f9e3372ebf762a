package mailbuild_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"testing"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/mailgate/mailgate/adapters/mailbuild"
)

const (
	testDomain   = "example.com"
	testSelector = "mg2026"
)

// testMessage is what mailbuild produces for a reply with an HTML body: CRLF
// throughout, an RFC 2047 subject folded over two lines, quoted-printable
// UTF-8 parts inside multipart/alternative.
func testMessage() []byte {
	lines := []string{
		`From: =?UTF-8?Q?Ren=C3=A9e_Dupr=C3=A9?= <renee@example.com>`,
		`To: Bob <bob@example.net>, carol@example.org`,
		`Cc: dave@example.org`,
		`Subject: =?UTF-8?B?UsOpdW5pb24gZGUgbCfDqXF1aXBlIOKAlCBvcmRyZSBkdSBqb3Vy?=`,
		` =?UTF-8?B?IOKclA==?=`,
		`Date: Tue, 03 Mar 2026 10:15:00 +0100`,
		`Message-ID: <0f1e2d3c.4b5a@example.com>`,
		`In-Reply-To: <a1b2c3@example.net>`,
		`References: <z9y8x7@example.org> <a1b2c3@example.net>`,
		`MIME-Version: 1.0`,
		`Content-Type: multipart/alternative; boundary="mg-b0undary"`,
		`X-Priority: 3`,
		``,
		`--mg-b0undary`,
		`Content-Type: text/plain; charset=utf-8`,
		`Content-Transfer-Encoding: quoted-printable`,
		``,
		`Bonjour =C3=A0 tous,`,
		``,
		`la r=C3=A9union est d=C3=A9plac=C3=A9e =C3=A0 14 h.`,
		`--mg-b0undary`,
		`Content-Type: text/html; charset=utf-8`,
		`Content-Transfer-Encoding: quoted-printable`,
		``,
		`<p>Bonjour =C3=A0 tous,</p><p>la r=C3=A9union est d=C3=A9plac=C3=A9e =C3=`,
		`=A0 14 h.</p>`,
		`--mg-b0undary--`,
		``,
	}
	return []byte(strings.Join(lines, "\r\n"))
}

// lookupFor answers DNS TXT queries with record at <selector>._domainkey.<domain>
// and fails every other name, as DNS would.
func lookupFor(record string) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		if name == testSelector+"._domainkey."+testDomain {
			return []string{record}, nil
		}
		return nil, errors.New("no such host " + name)
	}
}

// verify checks the single signature on message against record and returns
// its verification.
func verify(t *testing.T, message []byte, record string) *msgauth.Verification {
	t.Helper()
	verifs, err := msgauth.VerifyWithOptions(bytes.NewReader(message), &msgauth.VerifyOptions{LookupTXT: lookupFor(record)})
	if err != nil {
		t.Fatalf("VerifyWithOptions: %v", err)
	}
	if len(verifs) != 1 {
		t.Fatalf("got %d verifications, want 1", len(verifs))
	}
	return verifs[0]
}

func newTestSigner(t *testing.T, alg mailbuild.DKIMAlgorithm) (*mailbuild.DKIMSigner, string) {
	t.Helper()
	privatePEM := testKey(t, alg)
	s, err := mailbuild.NewDKIMSigner(testDomain, testSelector, privatePEM)
	if err != nil {
		t.Fatalf("NewDKIMSigner: %v", err)
	}
	record, err := mailbuild.DKIMRecord(privatePEM)
	if err != nil {
		t.Fatalf("DKIMRecord: %v", err)
	}
	return s, record
}

func sign(t *testing.T, s *mailbuild.DKIMSigner, message []byte) []byte {
	t.Helper()
	signed, err := s.Sign(message)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return signed
}

// signatureTags returns the tags of the DKIM-Signature field that starts signed.
func signatureTags(t *testing.T, signed []byte) map[string]string {
	t.Helper()
	end := bytes.Index(signed, []byte("\r\nFrom:"))
	if !bytes.HasPrefix(signed, []byte("DKIM-Signature:")) || end < 0 {
		t.Fatalf("signed message does not start with a DKIM-Signature field:\n%s", signed)
	}
	value := strings.TrimPrefix(string(signed[:end]), "DKIM-Signature:")
	tags := make(map[string]string)
	for tag := range strings.SplitSeq(value, ";") {
		k, v, _ := strings.Cut(tag, "=")
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		tags[k] = strings.Join(strings.Fields(v), "")
	}
	return tags
}

// replaceOnce replaces the single occurrence of old in b, failing the test
// when old is absent, so a tampering test can't silently tamper nothing.
func replaceOnce(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	if n := bytes.Count(b, []byte(old)); n != 1 {
		t.Fatalf("%q occurs %d times in the message, want 1", old, n)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

func TestDKIMSigner_Sign(t *testing.T) {
	t.Parallel()

	for _, alg := range algorithms {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			s, record := newTestSigner(t, alg)
			message := testMessage()
			signed := sign(t, s, message)

			t.Run("OK", func(t *testing.T) {
				t.Parallel()
				v := verify(t, signed, record)
				if v.Err != nil {
					t.Fatalf("verification failed: %v", v.Err)
				}
				if v.Domain != testDomain {
					t.Fatalf("domain = %q, want %q", v.Domain, testDomain)
				}
				for _, want := range []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"} {
					if !containsFold(v.HeaderKeys, want) {
						t.Errorf("h= %v does not sign %s", v.HeaderKeys, want)
					}
				}
				if n := countFold(v.HeaderKeys, "From"); n < 2 {
					t.Errorf("h= lists From %d times, want it oversigned", n)
				}
			})

			t.Run("Tags", func(t *testing.T) {
				t.Parallel()
				tags := signatureTags(t, signed)
				want := map[string]string{"v": "1", "a": string(alg), "c": "relaxed/relaxed", "d": testDomain, "s": testSelector}
				for k, v := range want {
					if tags[k] != v {
						t.Errorf("%s= is %q, want %q", k, tags[k], v)
					}
				}
				if s.Algorithm() != alg || s.Domain() != testDomain || s.Selector() != testSelector {
					t.Errorf("signer reports %s %s %s", s.Algorithm(), s.Domain(), s.Selector())
				}
			})

			t.Run("KeepsMessageAndCRLF", func(t *testing.T) {
				t.Parallel()
				if !bytes.HasSuffix(signed, message) {
					t.Fatal("the signed message does not end with the original message")
				}
				for i, c := range signed {
					if c == '\r' && (i+1 == len(signed) || signed[i+1] != '\n') || c == '\n' && (i == 0 || signed[i-1] != '\r') {
						t.Fatalf("bare CR or LF at byte %d: %q", i, signed[max(0, i-20):min(len(signed), i+20)])
					}
				}
				sigField := signed[:len(signed)-len(message)]
				for line := range strings.SplitSeq(strings.TrimSuffix(string(sigField), "\r\n"), "\r\n") {
					if len(line) > 998 {
						t.Fatalf("signature line is %d bytes, over RFC 5322's 998", len(line))
					}
				}
			})

			t.Run("RelaxedToleratesWhitespace", func(t *testing.T) {
				t.Parallel()
				rewrapped := replaceOnce(t, signed, "Subject: =?UTF-8?B?", "Subject:\t =?UTF-8?B?")
				rewrapped = replaceOnce(t, rewrapped, "Bonjour =C3=A0 tous,\r\n\r\n", "Bonjour =C3=A0 tous,   \r\n\r\n")
				if v := verify(t, rewrapped, record); v.Err != nil {
					t.Fatalf("relaxed canonicalization should ignore whitespace changes: %v", v.Err)
				}
			})

			t.Run("ErrBodyTampered", func(t *testing.T) {
				t.Parallel()
				tampered := replaceOnce(t, signed, "14 h.</p>", "15 h.</p>")
				if v := verify(t, tampered, record); v.Err == nil {
					t.Fatal("verification passed on a tampered body")
				}
			})

			t.Run("ErrSubjectTampered", func(t *testing.T) {
				t.Parallel()
				tampered := replaceOnce(t, signed, "UsOpdW5pb24", "UsOpdW5pb25")
				if v := verify(t, tampered, record); v.Err == nil {
					t.Fatal("verification passed on a tampered Subject")
				}
			})

			t.Run("ErrFromAdded", func(t *testing.T) {
				t.Parallel()
				i := bytes.Index(signed, []byte("\r\nFrom:")) + 2
				added := append(append(append([]byte{}, signed[:i]...), "From: ceo@example.com\r\n"...), signed[i:]...)
				if v := verify(t, added, record); v.Err == nil {
					t.Fatal("verification passed with a second From field; From is not oversigned")
				}
			})

			t.Run("ErrOtherKey", func(t *testing.T) {
				t.Parallel()
				other, err := mailbuild.GenerateDKIMKey(mailbuild.Ed25519SHA256)
				if err != nil {
					t.Fatal(err)
				}
				otherRecord, err := mailbuild.DKIMRecord(other)
				if err != nil {
					t.Fatal(err)
				}
				if v := verify(t, signed, otherRecord); v.Err == nil {
					t.Fatal("verification passed against another key's record")
				}
			})
		})
	}

	t.Run("RSAMinimumSizeKey", func(t *testing.T) {
		t.Parallel()
		key, err := rsa.GenerateKey(rand.Reader, mailbuild.MinRSABits)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		privatePEM := pemOf(t, "PRIVATE KEY", der)
		s, err := mailbuild.NewDKIMSigner(testDomain, testSelector, privatePEM)
		if err != nil {
			t.Fatalf("NewDKIMSigner with a %d-bit key: %v", mailbuild.MinRSABits, err)
		}
		record, err := mailbuild.DKIMRecord(privatePEM)
		if err != nil {
			t.Fatal(err)
		}
		if v := verify(t, sign(t, s, testMessage()), record); v.Err != nil {
			t.Fatalf("verification failed: %v", v.Err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		s, record := newTestSigner(t, mailbuild.Ed25519SHA256)
		var wg sync.WaitGroup
		results := make([][]byte, 8)
		errs := make([]error, len(results))
		for i := range results {
			wg.Go(func() { results[i], errs[i] = s.Sign(testMessage()) })
		}
		wg.Wait()
		for i, signed := range results {
			if errs[i] != nil {
				t.Fatalf("Sign #%d: %v", i, errs[i])
			}
			if v := verify(t, signed, record); v.Err != nil {
				t.Fatalf("signature #%d: %v", i, v.Err)
			}
		}
	})

	t.Run("ErrMalformedMessage", func(t *testing.T) {
		t.Parallel()
		s, _ := newTestSigner(t, mailbuild.Ed25519SHA256)
		good := testMessage()
		cases := map[string][]byte{
			"Empty":               nil,
			"BareLFInBody":        replaceOnce(t, good, "\r\n=A0 14 h.", "\n=A0 14 h."),
			"BareCRInHeader":      replaceOnce(t, good, "Cc: dave", "Cc:\rdave"),
			"LFOnly":              bytes.ReplaceAll(good, []byte("\r\n"), []byte("\n")),
			"NoHeaderEnd":         []byte("From: a@example.com\r\nSubject: hi\r\n"),
			"NoFrom":              replaceOnce(t, good, "From: ", "Sender: "),
			"TwoFroms":            append([]byte("From: x@example.com\r\n"), good...),
			"HeaderWithoutColon":  replaceOnce(t, good, "X-Priority: 3", "X-Priority 3"),
			"LeadingContinuation": append([]byte(" folded\r\n"), good...),
		}
		for name, message := range cases {
			if _, err := s.Sign(message); err == nil {
				t.Errorf("%s: Sign succeeded, want an error", name)
			}
		}
	})
}

func TestNewDKIMSigner(t *testing.T) {
	t.Parallel()

	key := testKey(t, mailbuild.Ed25519SHA256)

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s, err := mailbuild.NewDKIMSigner("Mail.Example.COM.", "Mg-2026.Eu", key)
		if err != nil {
			t.Fatalf("NewDKIMSigner: %v", err)
		}
		if s.Domain() != "mail.example.com" || s.Selector() != "mg-2026.eu" {
			t.Fatalf("domain, selector = %q, %q; want them lower-cased", s.Domain(), s.Selector())
		}
	})

	t.Run("ErrBadSelector", func(t *testing.T) {
		t.Parallel()
		for _, sel := range []string{
			"", ".", "a.", ".a", "a..b", "-a", "a-", "a_b", "_domainkey", "a b", "sél", "a;b", "a=b", "a\r\nb",
			strings.Repeat("a", 64),
			strings.Repeat("a.", 120) + "a", // too long once ._domainkey.example.com is added
		} {
			_, err := mailbuild.NewDKIMSigner(testDomain, sel, key)
			checkInvalid(t, err, "selector", sel)
		}
	})

	t.Run("ErrBadDomain", func(t *testing.T) {
		t.Parallel()
		for _, d := range []string{"", "localhost", "exa mple.com", "example..com", "-example.com", "exämple.com", "example.com;x=1"} {
			_, err := mailbuild.NewDKIMSigner(d, testSelector, key)
			checkInvalid(t, err, "domain", d)
		}
	})

	t.Run("ErrBadKey", func(t *testing.T) {
		t.Parallel()
		for name, privatePEM := range badKeys(t) {
			_, err := mailbuild.NewDKIMSigner(testDomain, testSelector, privatePEM)
			checkInvalid(t, err, "private_key", name)
		}
	})
}

func containsFold(list []string, s string) bool { return countFold(list, s) > 0 }

func countFold(list []string, s string) int {
	n := 0
	for _, v := range list {
		if strings.EqualFold(v, s) {
			n++
		}
	}
	return n
}

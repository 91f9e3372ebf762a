package domain_test

import (
	"strings"
	"testing"

	"github.com/mailgate/mailgate/domain"
)

func TestCheckHeaderText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		value   string
		maxLen  int
		wantErr bool
	}{
		{"Empty", "", 10, false},
		{"Plain", "Quarterly report", 100, false},
		{"TabAllowed", "a\tb", 10, false},
		{"Unicode", "Grüße, 日本 😀", 100, false},
		{"ExactlyMax", strings.Repeat("x", 20), 20, false},
		{"ExactlyMaxMultibyte", strings.Repeat("é", 10), 20, false},
		{"OverMax", strings.Repeat("x", 21), 20, true},
		{"OverMaxCountsBytes", strings.Repeat("é", 11), 20, true},
		{"CR", "a\rb", 10, true},
		{"LF", "a\nb", 10, true},
		{"CRLF", "Hi\r\nBcc: victim@example.com", 100, true},
		{"TrailingLF", "subject\n", 100, true},
		{"NUL", "a\x00b", 10, true},
		{"SOH", "a\x01b", 10, true},
		{"VerticalTab", "a\vb", 10, true},
		{"FormFeed", "a\fb", 10, true},
		{"Escape", "a\x1bb", 10, true},
		{"UnitSeparator", "a\x1fb", 10, true},
		{"DEL", "a\x7fb", 10, true},
		{"C1NextLine", "a\u0085b", 10, true},
		{"C1CSI", "a\u009bb", 10, true},
		{"LineSeparator", "a\u2028b", 10, true},
		{"ParagraphSeparator", "a\u2029b", 10, true},
		{"InvalidUTF8", "a\xffb", 10, true},
		{"TruncatedUTF8", "a\xe2\x82", 10, true},
		{"OverlongUTF8Slash", "a\xc0\xafb", 10, true},
		{"UTF16Surrogate", "a\xed\xa0\x80b", 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := domain.CheckHeaderText("subject", tt.value, tt.maxLen)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("CheckHeaderText(%q) error: %v", tt.value, err)
				}
				return
			}
			requireError(t, err, domain.CodeInvalid, "subject")
		})
	}
}

func TestNormalizeAddress(t *testing.T) {
	t.Parallel()
	ok := []struct {
		name string
		in   string
		want string
	}{
		{"Plain", "alice@example.com", "alice@example.com"},
		{"Subdomain", "a.b+tag@mail.example.co.uk", "a.b+tag@mail.example.co.uk"},
		{"UpperDomainLowered", "Alice.Smith@EXAMPLE.COM", "Alice.Smith@example.com"},
		{"MixedCaseLocalKept", "MiXeD@Example.Org", "MiXeD@example.org"},
		{"SurroundingSpacesTrimmed", "  alice@example.com  ", "alice@example.com"},
		{"Digits", "1234@123.example", "1234@123.example"},
		{"HyphenInLabel", "a@my-host.example.com", "a@my-host.example.com"},
		{"PunycodeDomain", "a@XN--BCHER-KVA.de", "a@xn--bcher-kva.de"},
		{"Local64", strings.Repeat("l", 64) + "@example.com", strings.Repeat("l", 64) + "@example.com"},
		// RFC 6531: UTF-8 local parts, domains in their ASCII form.
		{"UTF8LocalLatin", "jösé@example.org", "jösé@example.org"},
		{"UTF8LocalCJK", "用户@xn--fsqu00a.xn--4rr70v", "用户@xn--fsqu00a.xn--4rr70v"},
		{"UTF8Local64Bytes", strings.Repeat("é", 32) + "@example.com", strings.Repeat("é", 32) + "@example.com"},
	}
	for _, tt := range ok {
		t.Run("OK/"+tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.NormalizeAddress("to[0].email_address", tt.in)
			if err != nil {
				t.Fatalf("NormalizeAddress(%q) error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("NormalizeAddress(%q) = %q, want %q", tt.in, got, tt.want)
			}
			again, err := domain.NormalizeAddress("to[0].email_address", got)
			if err != nil || again != got {
				t.Fatalf("NormalizeAddress is not idempotent: %q -> %q, %v", got, again, err)
			}
		})
	}

	bad := []struct {
		name string
		in   string
	}{
		{"Empty", ""},
		{"Blank", "   "},
		{"DisplayNameLooksLikeAddress", `"a@x.com" <b@evil.com>`},
		{"DisplayName", "Name <a@b.com>"},
		{"QuotedDisplayName", `"Name" <a@b.com>`},
		{"AngleBracketsOnly", "<a@b.com>"},
		{"EncodedWordDisplayName", "=?utf-8?q?a@x.com?= <b@evil.com>"},
		{"TwoAts", "a@b@c.com"},
		{"NoAt", "alice.example.com"},
		{"MissingDomain", "alice@"},
		{"MissingLocal", "@example.com"},
		{"SingleLabelDomain", "alice@localhost"},
		{"EmptyLabel", "alice@example..com"},
		{"LeadingDotDomain", "alice@.example.com"},
		{"LeadingHyphenLabel", "alice@-example.com"},
		{"TrailingHyphenLabel", "alice@example-.com"},
		{"UnderscoreInDomain", "alice@ex_ample.com"},
		{"LabelOver63", "alice@" + strings.Repeat("d", 64) + ".com"},
		{"IPLiteral", "alice@[192.0.2.1]"},
		{"CRInLocal", "ali\rce@example.com"},
		{"LFInLocal", "ali\nce@example.com"},
		{"CRLFInjection", "alice@example.com\r\nRCPT TO:<victim@example.com>"},
		{"NUL", "alice\x00@example.com"},
		{"NULInDomain", "alice@exa\x00mple.com"},
		{"DEL", "alice\x7f@example.com"},
		{"SpaceInside", "ali ce@example.com"},
		{"SpaceBeforeAt", "alice @example.com"},
		{"TabInside", "ali\tce@example.com"},
		{"CommentAfter", "alice@example.com (Alice)"},
		{"CommentBefore", "(Alice)alice@example.com"},
		{"CommentInDomain", "alice@(c)example.com"},
		{"Group", "friends: alice@example.com;"},
		{"EmptyGroup", "undisclosed-recipients:;"},
		{"List", "alice@example.com, bob@example.com"},
		{"Semicolon", "alice@example.com;"},
		{"Backslash", `ali\ce@example.com`},
		{"Local65", strings.Repeat("l", 65) + "@example.com"},
		{"QuotedLocalCR", "\"ali\rce\"@example.com"},
		{"QuotedLocalLF", "\"ali\nce\"@example.com"},
		{"QuotedLocalCRLF", "\"a\r\nRCPT TO:<v@x.com>\"@example.com"},
		{"QuotedLocalNUL", "\"a\x00b\"@example.com"},
		{"QuotedCommentLocal", `"a"(c)@example.com`},
		{"QuotedEverything", `"alice@example.com"`},
		{"Overlong", strings.Repeat("a", 60) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + ".com"},
		{"VeryOverlong", strings.Repeat("a", 5000) + "@example.com"},
		{"InvalidUTF8", "al\xffice@example.com"},
		{"LineSeparator", "alice\u2028@example.com"},
		{"DotAtStartOfLocal", ".alice@example.com"},
		{"DoubleDotInLocal", "ali..ce@example.com"},
		{"UTF8LocalOver64Bytes", strings.Repeat("é", 33) + "@example.com"},
		{"UTF8FormatChar", "ali\u200bce@example.com"},
		{"UTF8Domain", "jösé@exämple.org"},
	}
	for _, tt := range bad {
		t.Run("ErrInvalid/"+tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.NormalizeAddress("to[0].email_address", tt.in)
			if err == nil {
				t.Fatalf("NormalizeAddress(%q) = %q, want an error", tt.in, got)
			}
			requireError(t, err, domain.CodeInvalid, "to[0].email_address")
			if got != "" {
				t.Fatalf("NormalizeAddress(%q) returned %q with its error", tt.in, got)
			}
		})
	}

	// A trailing dot is the root label; whether it is refused or dropped, it
	// must not survive into the normalized form.
	t.Run("TrailingDotNeverKept", func(t *testing.T) {
		t.Parallel()
		got, err := domain.NormalizeAddress("f", "alice@Example.com.")
		if err == nil && got != "alice@example.com" {
			t.Fatalf("NormalizeAddress(trailing dot) = %q, want an error or alice@example.com", got)
		}
	})

	// Leading or trailing CR/LF may be trimmed as white space, but must never
	// reach the result.
	t.Run("EdgeControlNeverKept", func(t *testing.T) {
		t.Parallel()
		for _, in := range []string{"alice@example.com\r\n", "\nalice@example.com", "alice@example.com\u0085"} {
			got, err := domain.NormalizeAddress("f", in)
			if err == nil && got != "alice@example.com" {
				t.Errorf("NormalizeAddress(%q) = %q, want an error or alice@example.com", in, got)
			}
		}
	})
}

// Inputs that slip through a parser which honours quoted local parts; each
// would put something other than a dot-atom into an SMTP command.
func TestNormalizeAddressRefusesQuotedLocalParts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		why  string
	}{
		{"EmptyDisplayNameWithAngles", `"" <b@evil.com>`, `angle brackets accepted: the bare-address check is skipped for input starting with a quote and net/mail reports an empty Name`},
		{"QuotedGroup", `"g": a@example.com;`, `group syntax accepted for the same reason`},
		{"QuotedLocalWithSpace", `"a b"@example.com`, `returned unquoted, not a valid addr-spec`},
		{"QuotedLocalWithAt", `"b@evil.com"@example.com`, `returned unquoted with two @`},
		{"QuotedLocalWithAngle", `"x> NOTIFY=NEVER ORCPT=rfc822;y"@example.com`, `returned unquoted, so "RCPT TO:<...>" gains ESMTP parameters`},
		{"QuotedLocalWithTab", "\"a\tb\"@example.com", `returned with a raw tab in the local part`},
		{"QuotedLocalWithQuote", `"a\"b"@example.com`, `returned with a bare quote in the local part`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Quoted local parts are refused outright: only a dot-atom is
			// safe inside an SMTP command.
			if got, err := domain.NormalizeAddress("f", tt.in); err == nil {
				t.Fatalf("NormalizeAddress(%q) = %q, want an error (%s)", tt.in, got, tt.why)
			}
		})
	}
}

func TestNormalizeDomain(t *testing.T) {
	t.Parallel()
	ok := []struct{ in, want string }{
		{"example.com", "example.com"},
		{"EXAMPLE.COM", "example.com"},
		{"example.com.", "example.com"},
		{" Example.Com ", "example.com"},
		{"xn--bcher-kva.de", "xn--bcher-kva.de"},
		{"XN--Bcher-KVA.DE", "xn--bcher-kva.de"},
		{"a.b.c.d.e", "a.b.c.d.e"},
		{strings.Repeat("d", 63) + ".com", strings.Repeat("d", 63) + ".com"},
	}
	for _, tt := range ok {
		t.Run("OK/"+tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := domain.NormalizeDomain("f", tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("NormalizeDomain(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
	bad := []string{
		"", ".", "localhost", "localhost.", "example..com", "example.com..", ".example.com",
		"-a.com", "a-.com", "ex ample.com", "ex_ample.com", "exa!mple.com", "[1.2.3.4]",
		strings.Repeat("d", 64) + ".com",
		strings.Repeat("abcdefghi.", 26) + "com",
	}
	for _, in := range bad {
		t.Run("ErrInvalid/"+in, func(t *testing.T) {
			t.Parallel()
			got, err := domain.NormalizeDomain("f", in)
			if err == nil {
				t.Fatalf("NormalizeDomain(%q) = %q, want an error", in, got)
			}
			requireError(t, err, domain.CodeInvalid, "f")
		})
	}
}

func TestDomainOf(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"alice@example.com", "example.com"},
		{"a.b@mail.example.org", "mail.example.org"},
		{"x@y.z", "y.z"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := domain.DomainOf(tt.in); got != tt.want {
				t.Fatalf("DomainOf(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	t.Run("OfNormalized", func(t *testing.T) {
		t.Parallel()
		addr, err := domain.NormalizeAddress("f", "Bob@MAIL.Example.COM")
		if err != nil {
			t.Fatal(err)
		}
		if got := domain.DomainOf(addr); got != "mail.example.com" {
			t.Fatalf("DomainOf(%q) = %q, want mail.example.com", addr, got)
		}
	})
}

func TestCheckMessageID(t *testing.T) {
	t.Parallel()
	ok := []string{
		"<a@b>",
		"<1234.5678@example.com>",
		"<3f2504e0-4f89-11d3-9a0c-0305e82c3301@mail.example.com>",
		"<a.b+c=d@[192.0.2.1]>",
		"<" + strings.Repeat("x", domain.MaxMessageIDLength-4) + "@b>",
	}
	for _, id := range ok {
		name := id
		if len(name) > 40 {
			name = "MaxLength"
		}
		t.Run("OK/"+name, func(t *testing.T) {
			t.Parallel()
			if err := domain.CheckMessageID("message_id", id); err != nil {
				t.Fatalf("CheckMessageID(%q) error: %v", id, err)
			}
		})
	}
	bad := []struct{ name, id string }{
		{"Empty", ""},
		{"NoBrackets", "a@b.com"},
		{"NoOpen", "a@b.com>"},
		{"NoClose", "<a@b.com"},
		{"NoAt", "<abc.example.com>"},
		{"TooShort", "<@b>"},
		{"OnlyBrackets", "<>"},
		{"Space", "<a b@c.com>"},
		{"Tab", "<a\tb@c.com>"},
		{"Nested", "<<a@b.com>>"},
		{"TwoIDs", "<a@b.com><c@d.com>"},
		{"TwoIDsSpaced", "<a@b.com> <c@d.com>"},
		{"Quote", `<"a"@b.com>`},
		{"Backslash", `<a\b@c.com>`},
		{"CRLF", "<a@b.com>\r\nBcc: x@y.com"},
		{"LFInside", "<a\n@b.com>"},
		{"NUL", "<a\x00@b.com>"},
		{"InvalidUTF8", "<a\xff@b.com>"},
		{"SurroundingSpace", " <a@b.com> "},
		{"Overlong", "<" + strings.Repeat("x", domain.MaxMessageIDLength) + "@b>"},
		{"NonASCII", "<jösé@example.org>"},
		{"TwoAts", "<a@b@c.com>"},
		{"DotAtEdge", "<.a@b.com>"},
		{"BadLiteral", "<a@[b[c]>"},
	}
	for _, tt := range bad {
		t.Run("ErrInvalid/"+tt.name, func(t *testing.T) {
			t.Parallel()
			err := domain.CheckMessageID("message_id", tt.id)
			requireError(t, err, domain.CodeInvalid, "message_id")
		})
	}
}

func TestParseReferences(t *testing.T) {
	t.Parallel()
	ok := []struct {
		name string
		in   string
		want []string
	}{
		{"Empty", "", nil},
		{"Blank", "   ", nil},
		{"One", "<a@b.com>", []string{"<a@b.com>"}},
		{"TwoSpace", "<a@b.com> <c@d.com>", []string{"<a@b.com>", "<c@d.com>"}},
		{"TabsAndRuns", "\t<a@b.com>\t\t <c@d.com>  ", []string{"<a@b.com>", "<c@d.com>"}},
	}
	for _, tt := range ok {
		t.Run("OK/"+tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseReferences("references", tt.in)
			if err != nil {
				t.Fatalf("ParseReferences(%q) error: %v", tt.in, err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Fatalf("ParseReferences(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	bad := []struct{ name, in string }{
		{"Bare", "a@b.com"},
		{"OneBadOfTwo", "<a@b.com> c@d.com"},
		{"CommaSeparated", "<a@b.com>,<c@d.com>"},
		{"Adjacent", "<a@b.com><c@d.com>"},
		{"CRLFFolded", "<a@b.com>\r\n <c@d.com>"},
		{"LF", "<a@b.com>\n<c@d.com>"},
		{"NUL", "<a@b.com>\x00"},
		{"Overlong", strings.Repeat("<a@b.com> ", domain.MaxReferencesLength/10+1)},
	}
	for _, tt := range bad {
		t.Run("ErrInvalid/"+tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseReferences("references", tt.in)
			requireError(t, err, domain.CodeInvalid, "references")
			if got != nil {
				t.Fatalf("ParseReferences(%q) returned %q with its error", tt.in, got)
			}
		})
	}
}

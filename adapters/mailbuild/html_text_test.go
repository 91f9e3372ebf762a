package mailbuild_test

import (
	"mime"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/adapters/mailbuild"
	"github.com/mailgate/mailgate/domain"
)

func TestLooksLikeHTML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		want bool
	}{
		{"<p>Hello</p>", true},
		{"<html><body>Hi</body></html>", true},
		{"<html>", true},
		{"<!DOCTYPE html><title>x</title>", true},
		{"Hi<br>there", true},
		{"Hi<br/>there", true},
		{"above<hr>below", true},
		{`<div class="greeting">Hello</div>`, true},
		{`<a href="https://example.com">site</a>`, true},
		{"<TABLE><TR><TD>x</TD></TR></TABLE>", true},
		{"Text before <b>bold</b> and after", true},
		{"<i>a</i>", true},
		{"<strong>a</strong> <em>b</em>", true},
		{"<span style='color:red'>red</span>", true},
		{"<ul><li>one</li></ul>", true},
		{"<ul><li>one<li>two</ul>", true},
		{"<h1>Title</h1>", true},
		{"<h6>Title</h6>", true},
		{`<img src="cid:logo">`, true},
		{"\n\n  <p>\n  indented\n  </p>\n", true},
		{"<p>Unclosed paragraph<p>and another</p>", true},

		{"", false},
		{"plain text", false},
		{"a < b", false},
		{"a < b and c > d", false},
		{"if a<b and c>d then", false},
		{"x<y", false},
		{"Use <b> to make text bold", false},
		{"<b", false},
		{"Bob <bob@example.org>", false},
		{"<https://example.com/path>", false},
		{"I <3 you", false},
		{"1 <2> 3", false},
		{"<not-a-tag>x</not-a-tag>", false},
		{"<<>>", false},
		{"<!-- a comment -->", false},
		{"</p> closing only", false},
		{`<img alt="no source">`, false},
		{"<p>never closed", false},
		{"=?utf-8?q?<b>?=", false},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			t.Parallel()
			if got := mailbuild.LooksLikeHTML(tt.body); got != tt.want {
				t.Errorf("LooksLikeHTML(%q) = %v, want %v", tt.body, got, tt.want)
			}
		})
	}
}

func TestBuildHTMLBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, html, text string
	}{
		{"paragraphs", "<p>One</p><p>Two</p>", "One\n\nTwo"},
		{"line breaks", "Line one<br>Line two<br/>Line three", "Line one\nLine two\nLine three"},
		{"double break", "<div>a<br><br>b</div>", "a\n\nb"},
		{"entities", "<p>Fish &amp; chips &lt;3 &eacute;t&eacute; &#8364;5 &quot;q&quot;</p>", "Fish & chips <3 été €5 \"q\""},
		{"whitespace", "<p>  lots\n\tof    space  </p>\n\n<div>\n  next\n</div>\r\n", "lots of space\n\nnext"},
		{"nbsp", "<p>a&nbsp;&nbsp;b</p>", "a b"},
		{"head script style", "<html><head><title>Secret</title><style>p{color:red}</style></head>" +
			"<body><script>var x = '<p>no</p>';</script><p>Visible</p><style>.y{}</style></body></html>", "Visible"},
		{"inline elements", "<p>Hello <b>bold</b><i>italic</i> <span>span</span>!</p>", "Hello bolditalic span!"},
		{"headings and divs", "<h1>Title</h1><div>a</div><div>b</div><h2>Sub</h2>text", "Title\n\na\nb\n\nSub\n\ntext"},
		{"list", "<p>Items:</p><ul><li>one</li><li>two</li></ul><p>after</p>", "Items:\n\n- one\n- two\n\nafter"},
		{"ordered list", "<ol><li>first</li><li>second</li></ol>", "- first\n- second"},
		{"nested list", "<ul><li>a<ul><li>b</li><li>c</li></ul></li><li>d</li></ul>", "- a\n  - b\n  - c\n- d"},
		{"link with text", `<p>See <a href="https://example.com/docs">the docs</a>.</p>`, "See the docs (https://example.com/docs)."},
		{"link showing its url", `<a href="https://example.com/">https://example.com</a>`, "https://example.com"},
		{"mailto link", `<p>Mail <a href="mailto:bob@example.org">bob@example.org</a></p>`, "Mail bob@example.org"},
		{"link without text", `<p>Go: <a href="https://example.com/x"></a></p>`, "Go: https://example.com/x"},
		{"anchor link", `<p><a href="#top">Back to top</a></p>`, "Back to top"},
		{"link in list", `<ul><li><a href="https://a.example">A</a></li></ul>`, "- A (https://a.example)"},
		{"table", "<table><tr><th>Name</th><th>Qty</th></tr><tr><td>Apple</td><td>3</td></tr></table><p>x</p>", "Name Qty\nApple 3\n\nx"},
		{"pre", "<p>Code:</p><pre>a  b\n  c</pre>", "Code:\n\na  b\n  c"},
		{"image alt", `<p>Logo: <img src="cid:logo" alt="ACME"> Inc</p>`, "Logo: ACME Inc"},
		{"comment", "<p>a<!-- hidden --> b</p>", "a b"},
		{"only markup", "<div><br></div>", ""},
		{"no wrapper", "Dear Bob,<br><br>Thanks.<br>Alice", "Dear Bob,\n\nThanks.\nAlice"},
		{"unicode", "<p>Grüße 🌧️ 日本語</p>", "Grüße 🌧️ 日本語"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := buildWith(t, newMessage(func(m *domain.Message) { m.Body = tt.html }))
			assertLineLengths(t, raw)
			m, leaves := mustWalk(t, raw)
			if got, _, _ := mime.ParseMediaType(m.Header.Get("Content-Type")); got != "multipart/alternative" {
				t.Fatalf("Content-Type = %q, want multipart/alternative", m.Header.Get("Content-Type"))
			}
			if len(leaves) != 2 {
				t.Fatalf("parts %q, want text/plain and text/html", paths(leaves))
			}
			for i, want := range []string{"text/plain", "text/html"} {
				mediaType, params, _ := mime.ParseMediaType(leaves[i].header.Get("Content-Type"))
				if mediaType != want || params["charset"] != "utf-8" {
					t.Errorf("part %d Content-Type = %q, want %s; charset=utf-8", i, leaves[i].header.Get("Content-Type"), want)
				}
				if got := leaves[i].header.Get("Content-Transfer-Encoding"); got != "quoted-printable" {
					t.Errorf("part %d Content-Transfer-Encoding = %q", i, got)
				}
			}
			if got, want := string(leaves[0].data), wantBody(strings.ReplaceAll(tt.text, "\n", "\r\n")); got != want {
				t.Errorf("text = %q, want %q", got, want)
			}
			if got, want := string(leaves[1].data), wantBody(tt.html); got != want {
				t.Errorf("html = %q, want %q", got, want)
			}
		})
	}
}

func TestBuildPlainBodyIsSinglePart(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"a < b", "if a<b and c>d", "Reply to <bob@example.org>", "Use <b> for bold"} {
		t.Run(body, func(t *testing.T) {
			t.Parallel()
			m := parse(t, build(t, newMessage(func(m *domain.Message) { m.Body = body })))
			if got := m.Header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type = %q, want text/plain", got)
			}
			if got := decodeBody(t, m); got != wantBody(body) {
				t.Errorf("body = %q, want %q", got, wantBody(body))
			}
		})
	}
}

package mailbuild

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// htmlElements are the elements whose presence marks a body as HTML. A tag
// only counts once it is closed (or is void, like br), so plain text such as
// "if a<b and c>d" or "use <b> for bold" is not mistaken for markup.
var htmlElements = map[atom.Atom]bool{ //nolint:gochecknoglobals // read-only: a fixed table
	atom.A: true, atom.Abbr: true, atom.Address: true, atom.Article: true,
	atom.Aside: true, atom.B: true, atom.Blockquote: true, atom.Body: true,
	atom.Caption: true, atom.Center: true, atom.Code: true, atom.Dd: true,
	atom.Del: true, atom.Div: true, atom.Dl: true, atom.Dt: true,
	atom.Em: true, atom.Font: true, atom.Footer: true, atom.H1: true,
	atom.H2: true, atom.H3: true, atom.H4: true, atom.H5: true,
	atom.H6: true, atom.Head: true, atom.Header: true, atom.Html: true,
	atom.I: true, atom.Ins: true, atom.Li: true, atom.Main: true,
	atom.Nav: true, atom.Ol: true, atom.P: true, atom.Pre: true,
	atom.S: true, atom.Section: true, atom.Small: true, atom.Span: true,
	atom.Strike: true, atom.Strong: true, atom.Sub: true, atom.Sup: true,
	atom.Table: true, atom.Tbody: true, atom.Td: true, atom.Tfoot: true,
	atom.Th: true, atom.Thead: true, atom.Title: true, atom.Tr: true,
	atom.U: true, atom.Ul: true,
}

// LooksLikeHTML reports whether body is HTML rather than plain text: it must
// contain a doctype, an html or body start tag, a br or hr, an img with a
// src, or a common element that is both opened and closed. A stray "<" as in
// "a < b", an address in angle brackets or an unclosed "<b" are not enough.
func LooksLikeHTML(body string) bool {
	if !strings.Contains(body, "<") {
		return false
	}
	open := make(map[atom.Atom]bool)
	z := html.NewTokenizer(strings.NewReader(body))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return false
		case html.DoctypeToken:
			return true
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			switch tok.DataAtom {
			case atom.Html, atom.Body, atom.Br, atom.Hr:
				return true
			case atom.Img:
				if attr(tok.Attr, "src") != "" {
					return true
				}
			default:
				if htmlElements[tok.DataAtom] {
					open[tok.DataAtom] = true
				}
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if open[atom.Lookup(name)] {
				return true
			}
		}
	}
}

// attr returns the value of the attribute key, or "" when it is absent.
func attr(attrs []html.Attribute, key string) string {
	for _, a := range attrs {
		if a.Namespace == "" && a.Key == key {
			return a.Val
		}
	}
	return ""
}

// htmlToText derives the plain-text alternative of an HTML body: visible
// text only, block elements on their own lines, paragraphs separated by a
// blank line, list items prefixed "- " and links followed by their target
// when it differs from the link text. Lines are separated by "\n".
func htmlToText(body string) string {
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		// html.Parse only fails on read errors, which a strings.Reader never
		// returns; fall back to the source rather than lose the text.
		return body
	}
	var t textWriter
	t.node(doc)
	return strings.ToValidUTF8(t.String(), string(utf8.RuneError))
}

// skipped elements have no visible text.
var skipped = map[atom.Atom]bool{ //nolint:gochecknoglobals // read-only: a fixed set
	atom.Head: true, atom.Script: true, atom.Style: true, atom.Template: true,
	atom.Noscript: true, atom.Title: true, atom.Iframe: true, atom.Object: true,
	atom.Select: true, atom.Svg: true, atom.Math: true,
}

// paragraphs are set off from their surroundings by a blank line.
var paragraphs = map[atom.Atom]bool{ //nolint:gochecknoglobals // read-only: a fixed set
	atom.P: true, atom.H1: true, atom.H2: true, atom.H3: true, atom.H4: true,
	atom.H5: true, atom.H6: true, atom.Blockquote: true, atom.Pre: true,
	atom.Table: true, atom.Dl: true, atom.Figure: true, atom.Hr: true,
}

// blocks start and end on a line of their own.
var blocks = map[atom.Atom]bool{ //nolint:gochecknoglobals // read-only: a fixed set
	atom.Address: true, atom.Article: true, atom.Aside: true, atom.Center: true,
	atom.Dd: true, atom.Details: true, atom.Div: true, atom.Dt: true,
	atom.Fieldset: true, atom.Figcaption: true, atom.Footer: true, atom.Form: true,
	atom.Header: true, atom.Li: true, atom.Main: true, atom.Nav: true,
	atom.Ol: true, atom.Section: true, atom.Summary: true, atom.Tr: true,
	atom.Caption: true, atom.Ul: true, atom.Body: true, atom.Html: true,
}

// textWriter accumulates the text rendering. Line breaks and spaces are kept
// pending and written only before the next visible text, which collapses
// runs of white space and leaves no leading or trailing blank lines.
type textWriter struct {
	b            strings.Builder
	breaks       int    // line breaks owed before the next text, at most 2
	space        bool   // a space is owed before the next text on this line
	prefix       string // list marker owed at the start of the next line
	lineStart    bool   // nothing has been written on the current line
	listDepth    int
	preformatted int
	cellsInRow   int
}

func (t *textWriter) String() string { return t.b.String() }

// lineBreak asks for at least n line breaks before the next text.
func (t *textWriter) lineBreak(n int) {
	t.breaks = max(t.breaks, n)
	t.space = false
}

// text writes s, collapsing its white space unless inside <pre>.
func (t *textWriter) text(s string) {
	if t.preformatted > 0 {
		for i, line := range strings.Split(s, "\n") {
			if i > 0 {
				t.breaks = min(t.breaks+1, 2)
				t.space = false
				if line == "" {
					continue
				}
			}
			t.word(strings.TrimRight(line, " \t\r\f"))
		}
		return
	}
	if r, _ := utf8.DecodeRuneInString(s); isHTMLSpace(r) {
		t.space = true // word ignores it at the start of a line
	}
	for i, w := range strings.FieldsFunc(s, isHTMLSpace) {
		if i > 0 {
			t.space = true
		}
		t.word(w)
	}
	if r, _ := utf8.DecodeLastRuneInString(s); isHTMLSpace(r) {
		t.space = true
	}
}

// word writes s after whatever line breaks, list marker or space are owed.
func (t *textWriter) word(s string) {
	if s == "" {
		return
	}
	if t.b.Len() > 0 && t.breaks > 0 {
		t.b.WriteString(strings.Repeat("\n", t.breaks))
		t.lineStart = true
	}
	if t.b.Len() == 0 {
		t.lineStart = true
	}
	t.breaks = 0
	if t.prefix != "" {
		if !t.lineStart {
			t.b.WriteByte('\n')
		}
		t.b.WriteString(t.prefix)
		t.prefix = ""
		t.lineStart = true
		t.space = false
	}
	if t.space && !t.lineStart {
		t.b.WriteByte(' ')
	}
	t.space = false
	t.b.WriteString(s)
	t.lineStart = false
}

// isHTMLSpace reports the characters HTML treats as inter-word space, plus
// the no-break space that editors use for indentation.
func isHTMLSpace(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\f', '\u00a0':
		return true
	}
	return false
}

func (t *textWriter) node(n *html.Node) {
	switch n.Type {
	case html.TextNode:
		t.text(n.Data)
		return
	case html.DocumentNode:
		t.children(n)
		return
	case html.ElementNode:
	default: // comments, doctypes
		return
	}
	if skipped[n.DataAtom] {
		return
	}
	switch n.DataAtom {
	case atom.Br:
		t.breaks = min(t.breaks+1, 2)
		t.space = false
		if t.b.Len() == 0 {
			t.breaks = 0
		}
		return
	case atom.Img:
		if alt := strings.TrimSpace(attr(n.Attr, "alt")); alt != "" {
			t.text(alt)
		}
		return
	case atom.A:
		t.link(n)
		return
	case atom.Li:
		t.lineBreak(1)
		t.prefix = strings.Repeat("  ", max(t.listDepth-1, 0)) + "- "
		t.children(n)
		t.prefix = ""
		t.lineBreak(1)
		return
	case atom.Ul, atom.Ol:
		if t.listDepth == 0 {
			t.lineBreak(2)
		} else {
			t.lineBreak(1)
		}
		t.listDepth++
		t.children(n)
		t.listDepth--
		if t.listDepth == 0 {
			t.lineBreak(2)
		} else {
			t.lineBreak(1)
		}
		return
	case atom.Pre:
		t.lineBreak(2)
		t.preformatted++
		t.children(n)
		t.preformatted--
		t.lineBreak(2)
		return
	case atom.Tr:
		t.lineBreak(1)
		t.cellsInRow = 0
		t.children(n)
		t.lineBreak(1)
		return
	case atom.Td, atom.Th:
		if t.cellsInRow > 0 {
			t.space = true
		}
		t.cellsInRow++
		t.children(n)
		t.space = true
		return
	}
	breaks := 0
	switch {
	case paragraphs[n.DataAtom]:
		breaks = 2
	case blocks[n.DataAtom]:
		breaks = 1
	}
	if breaks > 0 {
		t.lineBreak(breaks)
	}
	t.children(n)
	if breaks > 0 {
		t.lineBreak(breaks)
	}
}

func (t *textWriter) children(n *html.Node) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		t.node(c)
	}
}

// link writes the link text followed by " (href)" unless the text already
// says where the link goes.
func (t *textWriter) link(n *html.Node) {
	label := strings.Join(strings.FieldsFunc(visibleText(n), isHTMLSpace), " ")
	t.children(n)
	href := strings.Join(strings.FieldsFunc(attr(n.Attr, "href"), isHTMLSpace), "")
	if href == "" || strings.HasPrefix(href, "#") || hasScheme(href, "javascript:") {
		return
	}
	if sameTarget(label, href) {
		return
	}
	if label == "" {
		t.text(href)
		return
	}
	t.space = true
	t.text("(" + href + ")")
}

// visibleText is the text the reader sees inside n, before white space is collapsed.
func visibleText(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		switch {
		case n.Type == html.TextNode:
			b.WriteString(n.Data)
		case n.Type == html.ElementNode && skipped[n.DataAtom]:
		case n.Type == html.ElementNode && n.DataAtom == atom.Img:
			b.WriteString(attr(n.Attr, "alt"))
		default:
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
	}
	walk(n)
	return b.String()
}

// sameTarget reports whether a link's label spells out its href, ignoring
// the mailto:/tel: scheme, an http(s) scheme and a trailing slash.
func sameTarget(label, href string) bool {
	if label == "" {
		return false
	}
	normalize := func(s string) string {
		for _, scheme := range []string{"mailto:", "tel:", "https://", "http://"} {
			if hasScheme(s, scheme) {
				s = s[len(scheme):]
				break
			}
		}
		return strings.ToLower(strings.TrimSuffix(s, "/"))
	}
	return label == href || normalize(label) == normalize(href)
}

func hasScheme(s, scheme string) bool {
	return len(s) >= len(scheme) && strings.EqualFold(s[:len(scheme)], scheme)
}

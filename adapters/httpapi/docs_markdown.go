package httpapi

import (
	"bufio"
	"bytes"
	"fmt"
	"html/template"
	"slices"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// helpMarkdown renders the CommonMark the document's descriptions are
// written in, with goldmark.
//
// The output is safe for the page without a sanitizer: goldmark's HTML
// renderer refuses dangerous link targets unless told to be unsafe, and the
// parser here has no syntax that starts at '<'. The document writes
// placeholders such as `Bearer <token>`, <uuid@sender-domain> and
// t=<unix seconds> in prose; CommonMark would read them as raw HTML (which a
// safe renderer drops) or as mail autolinks. Without those two inline parsers
// and the HTML block parser they are shown as written, as the page always
// showed them, and the document can't put markup on the page.
type helpMarkdown struct {
	md goldmark.Markdown
}

func newHelpMarkdown() helpMarkdown {
	p := parser.NewParser(
		parser.WithBlockParsers(withoutAngleSyntax(parser.DefaultBlockParsers())...),
		parser.WithInlineParsers(withoutAngleSyntax(parser.DefaultInlineParsers())...),
		parser.WithParagraphTransformers(parser.DefaultParagraphTransformers()...),
	)
	return helpMarkdown{md: goldmark.New(goldmark.WithParser(p))}
}

// withoutAngleSyntax drops the parsers triggered by '<': raw HTML (inline and
// block) and autolinks.
func withoutAngleSyntax(parsers []util.PrioritizedValue) []util.PrioritizedValue {
	return slices.DeleteFunc(parsers, func(v util.PrioritizedValue) bool {
		trigger, ok := v.Value.(interface{ Trigger() []byte })
		return ok && bytes.IndexByte(trigger.Trigger(), '<') >= 0
	})
}

func (m helpMarkdown) parse(md string) ([]byte, ast.Node) {
	source := []byte(md)
	return source, m.md.Parser().Parse(text.NewReader(source))
}

// render writes nodes as HTML; the renderer escapes every text it writes.
func (m helpMarkdown) render(source []byte, nodes ...ast.Node) (template.HTML, error) {
	var buf bytes.Buffer
	// One buffered writer for all the nodes: given a plain writer the
	// renderer would allocate one per node.
	w := bufio.NewWriter(&buf)
	for _, n := range nodes {
		if err := m.md.Renderer().Render(w, source, n); err != nil {
			return "", fmt.Errorf("render Markdown: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return "", fmt.Errorf("render Markdown: %w", err)
	}
	return template.HTML(buf.String()), nil // goldmark's safe renderer escaped it
}

// Blocks renders a description as block HTML: paragraphs, lists, code blocks.
func (m helpMarkdown) Blocks(md string) (template.HTML, error) {
	source, doc := m.parse(md)
	return m.render(source, children(doc)...)
}

// Inline renders a description that goes inside an element of its own (a
// table cell, a summary line): a single paragraph without its <p>, anything
// longer as blocks.
func (m helpMarkdown) Inline(md string) (template.HTML, error) {
	source, doc := m.parse(md)
	if first := doc.FirstChild(); doc.ChildCount() == 1 && first.Kind() == ast.KindParagraph {
		return m.render(source, children(first)...)
	}
	return m.render(source, children(doc)...)
}

// StartsWithParagraph says whether a description opens with a paragraph, so
// a sentence put before it joins that paragraph rather than a list or code.
func (m helpMarkdown) StartsWithParagraph(md string) bool {
	_, doc := m.parse(md)
	first := doc.FirstChild()
	return first != nil && first.Kind() == ast.KindParagraph
}

// Sections splits a description at its level-2 headings: the blocks before
// the first heading, then one topic per heading with the blocks under it.
func (m helpMarkdown) Sections(md string) (template.HTML, []helpTopic, error) {
	source, doc := m.parse(md)
	var (
		intro   []ast.Node
		topics  []helpTopic
		current []ast.Node
	)
	flush := func() error {
		if len(topics) == 0 {
			intro = current
		} else {
			body, err := m.render(source, current...)
			if err != nil {
				return err
			}
			topics[len(topics)-1].Body = body
		}
		current = nil
		return nil
	}
	for _, n := range children(doc) {
		heading, ok := n.(*ast.Heading)
		if !ok || heading.Level != 2 {
			current = append(current, n)
			continue
		}
		if err := flush(); err != nil {
			return "", nil, err
		}
		title, err := m.render(source, children(heading)...)
		if err != nil {
			return "", nil, err
		}
		topics = append(topics, helpTopic{ID: "topic-" + slug(linesText(source, heading)), Title: title})
	}
	if err := flush(); err != nil {
		return "", nil, err
	}
	body, err := m.render(source, intro...)
	return body, topics, err
}

// children lists a node's children.
func children(n ast.Node) []ast.Node {
	var out []ast.Node
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		out = append(out, c)
	}
	return out
}

// linesText is a block's source text, as written.
func linesText(source []byte, n ast.Node) string {
	var b strings.Builder
	lines := n.Lines()
	for i := range lines.Len() {
		seg := lines.At(i)
		b.Write(seg.Value(source))
	}
	return strings.TrimSpace(b.String())
}

// slug turns a heading into an element id: lower-case letters and digits,
// runs of anything else as one dash.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

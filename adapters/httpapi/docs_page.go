package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"strings"
)

// helpFiles are the help page's template and style sheet.
//
//go:embed help/page.html.tmpl help/page.css
var helpFiles embed.FS

// helpPage is the rendered help page and the Content-Security-Policy it is
// served with.
type helpPage struct {
	HTML []byte
	// ContentSecurityPolicy allows no scripts and no external assets, and
	// only the page's own style sheet, by its hash.
	ContentSecurityPolicy string
}

// helpPageData is what the page template reads: the view and the style sheet.
type helpPageData struct {
	*helpView
	Style template.CSS
}

// renderHelp builds the help page from an OpenAPI document.
func renderHelp(raw []byte) (helpPage, error) {
	doc, err := loadAPIDocument(raw)
	if err != nil {
		return helpPage{}, err
	}
	builder := &helpBuilder{doc: doc, raw: newRawDocument(raw), md: newHelpMarkdown()}
	view, err := builder.view()
	if err != nil {
		return helpPage{}, fmt.Errorf("build the help page: %w", err)
	}
	tmpl, err := template.New("page.html.tmpl").Funcs(template.FuncMap{
		"lower": strings.ToLower,
		"title": func(s string) string {
			if s == "" {
				return s
			}
			return strings.ToUpper(s[:1]) + s[1:]
		},
	}).ParseFS(helpFiles, "help/page.html.tmpl")
	if err != nil {
		return helpPage{}, fmt.Errorf("parse the help page template: %w", err)
	}
	css, err := helpFiles.ReadFile("help/page.css")
	if err != nil {
		return helpPage{}, fmt.Errorf("read the help page style: %w", err)
	}
	var buf bytes.Buffer
	// The style sheet is our own embedded file, inserted as written: the
	// policy's hash is of exactly these bytes.
	if err := tmpl.Execute(&buf, helpPageData{helpView: view, Style: template.CSS(css)}); err != nil {
		return helpPage{}, fmt.Errorf("render the help page: %w", err)
	}
	sum := sha256.Sum256(css)
	return helpPage{
		HTML:                  buf.Bytes(),
		ContentSecurityPolicy: "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'",
	}, nil
}

package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// loadAPIDocument loads and validates an OpenAPI document with kin-openapi,
// which resolves every $ref: a dangling one is an error here.
//
// The loader records where each element was written (IncludeOrigin), because
// kin-openapi keeps objects as Go maps and the page lists paths, properties,
// responses and media types in the document's order (see inDocumentOrder).
func loadAPIDocument(raw []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.IncludeOrigin = true
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate the OpenAPI document: %w", err)
	}
	if doc.Components == nil {
		// A document may have no components; the page reads them as empty.
		doc.Components = &openapi3.Components{}
	}
	return doc, nil
}

// inDocumentOrder returns a map's keys in the order the document writes them,
// read from the position kin-openapi's loader recorded for each key. A key
// without a recorded position (a map built in code) sorts after the others,
// by name, so the order is always the same.
func inDocumentOrder[V any](m map[string]V, origin func(V) *openapi3.Origin) []string {
	position := func(key string) (int, int, bool) {
		if o := origin(m[key]); o != nil && o.Key != nil {
			return o.Key.Line, o.Key.Column, true
		}
		return 0, 0, false
	}
	return slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		aLine, aCol, aKnown := position(a)
		bLine, bCol, bKnown := position(b)
		switch {
		case aKnown != bKnown:
			if aKnown {
				return -1
			}
			return 1
		case aKnown:
			if c := cmp.Or(cmp.Compare(aLine, bLine), cmp.Compare(aCol, bCol)); c != 0 {
				return c
			}
		}
		return strings.Compare(a, b)
	})
}

// The origins of the map values the page orders. A reference carries the
// position of the key that holds it, its target that of the component.
func pathItemOrigin(p *openapi3.PathItem) *openapi3.Origin       { return p.Origin }
func mediaTypeOrigin(m *openapi3.MediaType) *openapi3.Origin     { return m.Origin }
func schemaRefOrigin(s *openapi3.SchemaRef) *openapi3.Origin     { return s.Origin }
func headerRefOrigin(h *openapi3.HeaderRef) *openapi3.Origin     { return h.Origin }
func responseRefOrigin(r *openapi3.ResponseRef) *openapi3.Origin { return r.Origin }

// specMethods are the methods the API uses, in the order the page lists them.
var specMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} //nolint:gochecknoglobals // read-only: a fixed list

// schemaName returns the component name a local schema reference points at.
// kin-openapi has resolved it already; the name is what the page shows and
// links to.
func schemaName(ref string) (string, error) {
	name, ok := strings.CutPrefix(ref, "#/components/schemas/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("reference %q is not to a schema component", ref)
	}
	return name, nil
}

// rawDocument reads members of a JSON document as written there.
//
// The page shows a request example as the document writes it, members in
// the document's order. kin-openapi decodes examples into Go maps, which
// keep no order, so the example's own bytes are read from the document.
type rawDocument struct {
	doc []byte
	// objects holds each object decoded on the way to a member, by its
	// path, so the many examples under "paths" decode the document once.
	objects map[string]map[string]json.RawMessage
}

func newRawDocument(doc []byte) *rawDocument {
	return &rawDocument{doc: doc, objects: make(map[string]map[string]json.RawMessage)}
}

// member returns the bytes of the member at a path of keys.
func (r *rawDocument) member(keys ...string) (json.RawMessage, error) {
	current := json.RawMessage(r.doc)
	for i, key := range keys {
		at := strings.Join(keys[:i], "/")
		object, ok := r.objects[at]
		if !ok {
			if err := json.Unmarshal(current, &object); err != nil {
				return nil, fmt.Errorf("%s: %w", at, err)
			}
			r.objects[at] = object
		}
		next, ok := object[key]
		if !ok {
			return nil, fmt.Errorf("no member %s", strings.Join(keys[:i+1], "/"))
		}
		current = next
	}
	return current, nil
}

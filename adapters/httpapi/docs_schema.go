package httpapi

import (
	"fmt"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// schemaType names a schema's type the way the seed's page does: a model's
// name, "list of" a type, or a primitive with its format.
func (b *helpBuilder) schemaType(s *openapi3.SchemaRef) (helpType, error) {
	if s == nil || s.Value == nil {
		return helpType{Label: "any"}, nil
	}
	if s.Ref != "" {
		name, err := schemaName(s.Ref)
		if err != nil {
			return helpType{}, err
		}
		label := name
		if title := b.doc.Components.Schemas[name].Value.Title; title != "" {
			label = title
		}
		return helpType{Label: label, Link: "#model-" + name}, nil
	}
	v := s.Value
	if alternatives := slices.Concat(v.AnyOf, v.OneOf); len(alternatives) > 0 {
		var labels []string
		for _, alt := range alternatives {
			if alt.Value != nil && alt.Value.Type.Is(openapi3.TypeNull) {
				continue
			}
			t, err := b.schemaType(alt)
			if err != nil {
				return helpType{}, err
			}
			labels = append(labels, t.Label)
		}
		return helpType{Label: strings.Join(labels, " or ")}, nil
	}
	var labels []string
	if v.Type != nil {
		for _, name := range *v.Type {
			switch name {
			case openapi3.TypeNull:
				continue
			case openapi3.TypeArray:
				item, err := b.schemaType(v.Items)
				if err != nil {
					return helpType{}, err
				}
				return helpType{Label: "list of " + item.Label, Link: item.Link}, nil
			case openapi3.TypeString:
				switch {
				case v.Format == "uuid":
					name = "GUID"
				case v.Format != "":
					name += " (" + v.Format + ")"
				case v.ContentEncoding != "":
					name += " (" + v.ContentEncoding + ")"
				case v.ContentMediaType != "":
					name = "binary"
				}
			}
			labels = append(labels, name)
		}
	}
	if len(labels) == 0 {
		return helpType{Label: "any"}, nil
	}
	return helpType{Label: strings.Join(labels, " or ")}, nil
}

// schemaInfo is the seed page's "additional information": allowed values,
// limits and defaults.
func schemaInfo(s *openapi3.SchemaRef) string {
	if s == nil || s.Value == nil {
		return ""
	}
	v := s.Value
	var parts []string
	if len(v.Enum) > 0 {
		values := make([]string, len(v.Enum))
		for i, e := range v.Enum {
			values[i] = fmt.Sprint(e)
		}
		parts = append(parts, "One of "+strings.Join(values, ", "))
	}
	parts = appendRange(parts, v.MinLength, v.MaxLength, "characters")
	parts = appendRange(parts, v.MinItems, v.MaxItems, "items")
	if v.Min != nil && v.Max != nil {
		parts = append(parts, fmt.Sprintf("From %v to %v", *v.Min, *v.Max))
	}
	if v.Default != nil {
		parts = append(parts, fmt.Sprintf("Default %v", v.Default))
	}
	if v.ReadOnly {
		parts = append(parts, "Read-only")
	}
	return strings.Join(parts, ". ")
}

// appendRange describes a length or size limit: "At most 20 items", "At
// least 1 item" or "From 1 to 500 items". A minimum of 0 says nothing.
func appendRange(parts []string, lo uint64, hi *uint64, unit string) []string {
	switch {
	case lo > 0 && hi != nil:
		return append(parts, fmt.Sprintf("From %d to %d %s", lo, *hi, unit))
	case hi != nil:
		return append(parts, fmt.Sprintf("At most %d %s", *hi, unit))
	case lo > 0:
		return append(parts, fmt.Sprintf("At least %d %s", lo, unit))
	}
	return parts
}

func joinInfo(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + ". " + b
}

package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// The help page's view of the document: what the template shows, already
// ordered and rendered.
type (
	helpView struct {
		Title, Summary, Version string
		Intro                   template.HTML
		Topics                  []helpTopic
		Groups                  []helpGroup
		Models                  []helpModel
	}

	helpTopic struct {
		ID    string
		Title template.HTML
		Body  template.HTML
		// Endpoints are requests the topic describes that are not paths of
		// the API, such as the webhook deliveries the gateway makes.
		Endpoints []helpEndpoint
	}

	helpGroup struct {
		Name        string
		Description template.HTML
		Endpoints   []helpEndpoint
	}

	helpEndpoint struct {
		ID, Method, Path string
		Summary          template.HTML
		Description      template.HTML
		Public           bool
		Parameters       []helpParameter
		Body             *helpBody
		Responses        []helpResponse
		Samples          []helpSample
	}

	helpParameter struct {
		Name, In string
		Type     helpType
		Required bool
		Text     template.HTML
		Info     string
	}

	helpBody struct {
		Text    template.HTML
		Formats []helpFormat
		Models  []helpModel
	}

	// helpFormat is a set of media types that share one schema.
	helpFormat struct {
		MediaTypes []string
		Type       helpType
	}

	helpResponse struct {
		Code    string
		Text    template.HTML
		Headers []string
		Formats []helpFormat
	}

	// helpSample is a request body as the document gives it, shown verbatim.
	helpSample struct {
		ID, Title string
		Text      template.HTML
	}

	helpModel struct {
		ID, Name string
		Text     template.HTML
		Info     string
		Fields   []helpField
	}

	helpField struct {
		Name string
		Type helpType
		Text template.HTML
		Info string
	}

	// helpType is a type's label and, for a named model, the anchor it links to.
	helpType struct {
		Label, Link string
	}
)

// samplesOperation is the operation whose request samples the help page
// shows under the fixed ids sample-json and sample-xml, which clients and
// tests look up.
const samplesOperation = "sendMessage"

// webhookTopicID is the topic that shows the document's webhooks, the
// requests the gateway sends to the tenants' own endpoints.
const webhookTopicID = "topic-webhooks"

// xmlExampleExtension holds a media type's XML sample as text. OpenAPI's own
// example member would be checked against the object schema by validators
// that only know JSON, so the XML sample lives in an extension.
const xmlExampleExtension = "x-xml-example"

// helpBuilder builds the page's view from a loaded document.
type helpBuilder struct {
	doc *openapi3.T
	// raw is the document as written, for the request examples.
	raw *rawDocument
	md  helpMarkdown
}

// view builds the whole page: the description's topics, the endpoints by
// tag, the webhooks, and the models.
func (b *helpBuilder) view() (*helpView, error) {
	info := b.doc.Info
	view := &helpView{Title: info.Title, Summary: info.Summary, Version: info.Version}
	intro, topics, err := b.md.Sections(info.Description)
	if err != nil {
		return nil, fmt.Errorf("info description: %w", err)
	}
	view.Intro = intro
	if view.Topics, err = b.addSchemeTopics(topics); err != nil {
		return nil, err
	}

	groups := make(map[string]*helpGroup)
	var order []string
	for _, tag := range b.doc.Tags {
		text, err := b.md.Blocks(tag.Description)
		if err != nil {
			return nil, fmt.Errorf("tag %s: %w", tag.Name, err)
		}
		groups[tag.Name] = &helpGroup{Name: tag.Name, Description: text}
		order = append(order, tag.Name)
	}
	paths := b.doc.Paths.Map()
	for _, path := range inDocumentOrder(paths, pathItemOrigin) {
		item := paths[path]
		for _, method := range specMethods {
			op := item.GetOperation(method)
			if op == nil {
				continue
			}
			ep, err := b.endpoint([]string{"paths", path}, path, method, item, op)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", method, path, err)
			}
			tag := "other"
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			if groups[tag] == nil {
				groups[tag] = &helpGroup{Name: tag}
				order = append(order, tag)
			}
			groups[tag].Endpoints = append(groups[tag].Endpoints, ep)
		}
	}
	for _, tag := range order {
		if len(groups[tag].Endpoints) > 0 {
			view.Groups = append(view.Groups, *groups[tag])
		}
	}
	if err := b.addWebhookEndpoints(view); err != nil {
		return nil, err
	}

	// Models are listed alphabetically, which is how a reader looks one up.
	schemas := b.doc.Components.Schemas
	for _, name := range slices.Sorted(maps.Keys(schemas)) {
		model, err := b.model(name, schemas[name].Value)
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		view.Models = append(view.Models, model)
	}
	return view, nil
}

// endpoint describes one operation. at is where its path item is written in
// the document (["paths", "/api/messages"]), for reading its examples.
func (b *helpBuilder) endpoint(at []string, path, method string, item *openapi3.PathItem, op *openapi3.Operation) (helpEndpoint, error) {
	security := b.doc.Security
	if op.Security != nil {
		security = *op.Security
	}
	ep := helpEndpoint{ID: op.OperationID, Method: method, Path: path, Public: len(security) == 0}
	if ep.ID == "" {
		ep.ID = strings.ToLower(method) + strings.NewReplacer("/", "-", "{", "", "}", "").Replace(path)
	}
	var err error
	if ep.Summary, err = b.md.Inline(op.Summary); err != nil {
		return ep, err
	}
	if ep.Description, err = b.md.Blocks(op.Description); err != nil {
		return ep, err
	}
	for _, p := range slices.Concat(item.Parameters, op.Parameters) {
		param := p.Value
		t, err := b.schemaType(param.Schema)
		if err != nil {
			return ep, fmt.Errorf("parameter %s: %w", param.Name, err)
		}
		text, err := b.md.Inline(param.Description)
		if err != nil {
			return ep, fmt.Errorf("parameter %s: %w", param.Name, err)
		}
		ep.Parameters = append(ep.Parameters, helpParameter{
			Name: param.Name, In: param.In, Type: t, Required: param.Required, Text: text, Info: schemaInfo(param.Schema),
		})
	}
	if op.RequestBody != nil {
		if ep.Body, ep.Samples, err = b.requestBody(slices.Concat(at, []string{strings.ToLower(method)}), op); err != nil {
			return ep, fmt.Errorf("request body: %w", err)
		}
	}
	responses := op.Responses.Map()
	for _, code := range inDocumentOrder(responses, responseRefOrigin) {
		resp := responses[code].Value
		formats, err := b.mediaFormats(resp.Content)
		if err != nil {
			return ep, fmt.Errorf("response %s: %w", code, err)
		}
		var description string
		if resp.Description != nil {
			description = *resp.Description
		}
		text, err := b.md.Inline(description)
		if err != nil {
			return ep, fmt.Errorf("response %s: %w", code, err)
		}
		ep.Responses = append(ep.Responses, helpResponse{
			Code: code, Text: text, Headers: inDocumentOrder(resp.Headers, headerRefOrigin), Formats: formats,
		})
	}
	return ep, nil
}

// requestBody describes an operation's body, the models it uses, and its samples.
func (b *helpBuilder) requestBody(at []string, op *openapi3.Operation) (*helpBody, []helpSample, error) {
	body := op.RequestBody.Value
	text, err := b.md.Blocks(body.Description)
	if err != nil {
		return nil, nil, err
	}
	hb := &helpBody{Text: text}
	if hb.Formats, err = b.mediaFormats(body.Content); err != nil {
		return nil, nil, err
	}
	if hb.Models, err = b.bodyModels(body.Content); err != nil {
		return nil, nil, err
	}
	at = append(at, "requestBody")
	if ref := op.RequestBody.Ref; ref != "" {
		if at, err = refKeys(ref); err != nil {
			return nil, nil, err
		}
	}
	samples, err := b.bodySamples(at, op.OperationID, body.Content)
	return hb, samples, err
}

// refKeys spells a local reference ("#/components/requestBodies/Batch") as
// the keys rawDocument.member follows.
func refKeys(ref string) ([]string, error) {
	pointer, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("reference %q is not local to the document", ref)
	}
	keys := strings.Split(pointer, "/")
	for i, k := range keys {
		keys[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(k)
	}
	return keys, nil
}

// addWebhookEndpoints shows each webhook operation in the Webhooks topic,
// which it creates when the description has none.
func (b *helpBuilder) addWebhookEndpoints(view *helpView) error {
	for _, name := range inDocumentOrder(b.doc.Webhooks, pathItemOrigin) {
		item := b.doc.Webhooks[name]
		for _, method := range specMethods {
			op := item.GetOperation(method)
			if op == nil {
				continue
			}
			ep, err := b.endpoint([]string{"webhooks", name}, "<your endpoint URL>", method, item, op)
			if err != nil {
				return fmt.Errorf("webhook %s %s: %w", name, method, err)
			}
			if op.OperationID == "" {
				ep.ID = "webhook-" + slug(name) + "-" + strings.ToLower(method)
			}
			// The gateway makes this request: no token is involved either way.
			ep.Public = false
			i := slices.IndexFunc(view.Topics, func(t helpTopic) bool { return t.ID == webhookTopicID })
			if i < 0 {
				view.Topics = append(view.Topics, helpTopic{ID: webhookTopicID, Title: "Webhooks"})
				i = len(view.Topics) - 1
			}
			view.Topics[i].Endpoints = append(view.Topics[i].Endpoints, ep)
		}
	}
	return nil
}

// addSchemeTopics adds what the security schemes say to the Authentication
// topic, which it creates when the description has none. Schemes are listed
// by name.
func (b *helpBuilder) addSchemeTopics(topics []helpTopic) ([]helpTopic, error) {
	schemes := b.doc.Components.SecuritySchemes
	if len(schemes) == 0 {
		return topics, nil
	}
	i := slices.IndexFunc(topics, func(t helpTopic) bool { return t.ID == "topic-authentication" })
	if i < 0 {
		topics = append([]helpTopic{{ID: "topic-authentication", Title: "Authentication"}}, topics...)
		i = 0
	}
	for _, name := range slices.Sorted(maps.Keys(schemes)) {
		scheme := schemes[name].Value
		md := fmt.Sprintf("Security scheme `%s`: %s `%s`", name, scheme.Type, scheme.Scheme)
		if scheme.BearerFormat != "" {
			md += ", token format " + scheme.BearerFormat
		}
		md += "."
		// The sentence opens the description's first paragraph, or stands
		// as its own before a list or code.
		switch {
		case scheme.Description == "":
		case b.md.StartsWithParagraph(scheme.Description):
			md += " " + scheme.Description
		default:
			md += "\n\n" + scheme.Description
		}
		text, err := b.md.Blocks(md)
		if err != nil {
			return nil, fmt.Errorf("security scheme %s: %w", name, err)
		}
		topics[i].Body += text
	}
	return topics, nil
}

// mediaFormats groups media types by the schema they share, in document order.
func (b *helpBuilder) mediaFormats(content openapi3.Content) ([]helpFormat, error) {
	var formats []helpFormat
	for _, mediaType := range inDocumentOrder(content, mediaTypeOrigin) {
		t, err := b.schemaType(content[mediaType].Schema)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mediaType, err)
		}
		if n := len(formats); n > 0 && formats[n-1].Type == t {
			formats[n-1].MediaTypes = append(formats[n-1].MediaTypes, mediaType)
			continue
		}
		formats = append(formats, helpFormat{MediaTypes: []string{mediaType}, Type: t})
	}
	return formats, nil
}

// bodyModels lists the named object schemas a request body uses, each once:
// the body's own and those its fields refer to, as the seed's page shows
// MessageComposeModel and then MessageRecipientModel.
func (b *helpBuilder) bodyModels(content openapi3.Content) ([]helpModel, error) {
	var (
		models []helpModel
		seen   = map[string]bool{}
		visit  func(s *openapi3.SchemaRef) error
	)
	visit = func(s *openapi3.SchemaRef) error {
		if s == nil || s.Value == nil {
			return nil
		}
		if s.Ref != "" {
			name, err := schemaName(s.Ref)
			if err != nil {
				return err
			}
			if seen[name] || len(s.Value.Properties) == 0 {
				return nil
			}
			seen[name] = true
			model, err := b.model(name, b.doc.Components.Schemas[name].Value)
			if err != nil {
				return err
			}
			models = append(models, model)
		}
		for _, key := range inDocumentOrder(s.Value.Properties, schemaRefOrigin) {
			if err := visit(s.Value.Properties[key]); err != nil {
				return err
			}
		}
		return visit(s.Value.Items)
	}
	for _, mediaType := range inDocumentOrder(content, mediaTypeOrigin) {
		if err := visit(content[mediaType].Schema); err != nil {
			return nil, err
		}
	}
	return models, nil
}

// bodySamples returns the request samples of a body written at the keys at:
// the JSON example (indented, members in the document's order) and the XML one.
func (b *helpBuilder) bodySamples(at []string, operationID string, content openapi3.Content) ([]helpSample, error) {
	idPrefix := operationID + "-"
	if operationID == samplesOperation {
		idPrefix = ""
	}
	var samples []helpSample
	for _, mediaType := range inDocumentOrder(content, mediaTypeOrigin) {
		mt := content[mediaType]
		if mt.Example != nil && strings.HasSuffix(mediaType, "json") {
			raw, err := b.raw.member(slices.Concat(at, []string{"content", mediaType, "example"})...)
			if err != nil {
				return nil, fmt.Errorf("%s example: %w", mediaType, err)
			}
			var buf bytes.Buffer
			if err := json.Indent(&buf, raw, "", "  "); err != nil {
				return nil, fmt.Errorf("%s example: %w", mediaType, err)
			}
			samples = append(samples, helpSample{ID: idPrefix + "sample-json", Title: mediaType, Text: preText(buf.String())})
		}
		if xml, ok := mt.Extensions[xmlExampleExtension].(string); ok && xml != "" {
			samples = append(samples, helpSample{ID: idPrefix + "sample-xml", Title: mediaType, Text: preText(strings.TrimSpace(xml))})
		}
	}
	return samples, nil
}

// preText escapes a sample for a pre element. Only &, < and > are escaped,
// the least that keeps the text intact, so the page source stays readable
// and the samples are easy to copy from it.
func preText(s string) template.HTML {
	return template.HTML(strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)) // escaped just now
}

// model describes a named schema and its properties, in the document's order.
func (b *helpBuilder) model(name string, s *openapi3.Schema) (helpModel, error) {
	text, err := b.md.Blocks(s.Description)
	if err != nil {
		return helpModel{}, err
	}
	model := helpModel{ID: "model-" + name, Name: name, Text: text, Info: schemaInfo(&openapi3.SchemaRef{Value: s})}
	if s.XML != nil && s.XML.Name != "" {
		model.Info = joinInfo(model.Info, "XML element "+s.XML.Name)
	}
	for _, key := range inDocumentOrder(s.Properties, schemaRefOrigin) {
		prop := s.Properties[key]
		t, err := b.schemaType(prop)
		if err != nil {
			return model, fmt.Errorf("%s: %w", key, err)
		}
		// A property that refers to a model without describing itself
		// shows the model's description, which kin-openapi has put in its
		// value with any sibling keywords of the reference applied.
		text, err := b.md.Inline(prop.Value.Description)
		if err != nil {
			return model, fmt.Errorf("%s: %w", key, err)
		}
		info := schemaInfo(prop)
		if slices.Contains(s.Required, key) {
			info = joinInfo("Required", info)
		}
		if x := b.fieldXML(prop); x != nil && x.Name != "" {
			info = joinInfo(info, "XML element "+x.Name)
		}
		model.Fields = append(model.Fields, helpField{Name: key, Type: t, Text: text, Info: info})
	}
	return model, nil
}

// fieldXML is the xml object written for a property. kin-openapi gives a
// reference the referenced schema's value, with the keywords written beside
// the $ref applied to a copy; an xml object the copy shares with the model is
// the model's own, shown in the model's section rather than for each field.
func (b *helpBuilder) fieldXML(prop *openapi3.SchemaRef) *openapi3.XML {
	if prop.Ref == "" {
		return prop.Value.XML
	}
	name, err := schemaName(prop.Ref)
	if err != nil {
		return nil
	}
	if model := b.doc.Components.Schemas[name]; model != nil && model.Value.XML == prop.Value.XML {
		return nil
	}
	return prop.Value.XML
}

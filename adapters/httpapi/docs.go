package httpapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

// openAPIDocument is the API's OpenAPI 3.1 description. It is the one source
// of the API's documentation: GET /api/openapi.json serves it as is and the
// help page is built from it.
//
//go:embed openapi.json
var openAPIDocument []byte

// samplesOperation is the operation whose request samples the help page
// shows under the fixed ids sample-json and sample-xml, which clients and
// tests look up.
const samplesOperation = "sendMessage"

// serveOpenAPI answers the embedded OpenAPI document. It needs no token.
func serveOpenAPI(*gin.Context) (*answer, error) {
	return rawAnswer(http.StatusOK, "application/json", openAPIDocument), nil
}

// renderedHelp is the help page, rendered once per process.
var renderedHelp = sync.OnceValues(func() ([]byte, error) { return renderHelp(openAPIDocument) })

// helpHandler renders the help page when the server is built, so a broken
// document shows at startup (and in tests) rather than on a reader's request.
func (s *Server) helpHandler() handler {
	page, err := renderedHelp()
	if err != nil {
		s.logger.Error("the help page can't be rendered", "error", err)
		return func(*gin.Context) (*answer, error) { return nil, err }
	}
	return func(*gin.Context) (*answer, error) {
		// The page is self-contained: no scripts, no external assets.
		return rawAnswer(http.StatusOK, "text/html; charset=utf-8", page).
			with("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'").
			with("X-Content-Type-Options", "nosniff"), nil
	}
}

// routes lists the registered routes, for comparing them with the document.
func (s *Server) routes() gin.RoutesInfo { return s.engine.Routes() }

// The subset of OpenAPI 3.1 the help page reads. Objects whose order matters
// on the page (paths, properties, responses, media types) keep the
// document's order.
type (
	apiSpec struct {
		Info struct {
			Title       string `json:"title"`
			Summary     string `json:"summary"`
			Description string `json:"description"`
			Version     string `json:"version"`
		} `json:"info"`
		Tags []struct {
			Name        string `json:"name"`
			Description string `json:"description"`
		} `json:"tags"`
		Security []map[string][]string     `json:"security"`
		Paths    orderedMap[*specPathItem] `json:"paths"`
		// Webhooks are the requests the gateway sends to the tenants' endpoints.
		Webhooks   orderedMap[*specPathItem] `json:"webhooks"`
		Components struct {
			Schemas         map[string]*specSchema    `json:"schemas"`
			Parameters      map[string]*specParameter `json:"parameters"`
			Responses       map[string]*specResponse  `json:"responses"`
			Headers         map[string]*specHeader    `json:"headers"`
			SecuritySchemes map[string]struct {
				Type         string `json:"type"`
				Scheme       string `json:"scheme"`
				BearerFormat string `json:"bearerFormat"`
				Description  string `json:"description"`
			} `json:"securitySchemes"`
		} `json:"components"`
	}

	specPathItem struct {
		Parameters []*specParameter `json:"parameters"`
		Get        *specOperation   `json:"get"`
		Post       *specOperation   `json:"post"`
		Put        *specOperation   `json:"put"`
		Patch      *specOperation   `json:"patch"`
		Delete     *specOperation   `json:"delete"`
	}

	specOperation struct {
		Tags        []string                  `json:"tags"`
		OperationID string                    `json:"operationId"`
		Summary     string                    `json:"summary"`
		Description string                    `json:"description"`
		Parameters  []*specParameter          `json:"parameters"`
		RequestBody *specRequestBody          `json:"requestBody"`
		Responses   orderedMap[*specResponse] `json:"responses"`
		// Security is nil when the operation inherits the document's.
		Security *[]map[string][]string `json:"security"`
	}

	specParameter struct {
		Ref         string      `json:"$ref"`
		Name        string      `json:"name"`
		In          string      `json:"in"`
		Description string      `json:"description"`
		Required    bool        `json:"required"`
		Schema      *specSchema `json:"schema"`
	}

	specRequestBody struct {
		Description string                     `json:"description"`
		Required    bool                       `json:"required"`
		Content     orderedMap[*specMediaType] `json:"content"`
	}

	specMediaType struct {
		Schema  *specSchema     `json:"schema"`
		Example json.RawMessage `json:"example"`
		// XMLExample holds an XML sample as text. OpenAPI's own example
		// member would be checked against the object schema by validators
		// that only know JSON, so the XML sample lives in an extension.
		XMLExample string `json:"x-xml-example"`
	}

	specResponse struct {
		Ref         string                     `json:"$ref"`
		Description string                     `json:"description"`
		Headers     orderedMap[*specHeader]    `json:"headers"`
		Content     orderedMap[*specMediaType] `json:"content"`
	}

	specHeader struct {
		Ref         string      `json:"$ref"`
		Description string      `json:"description"`
		Schema      *specSchema `json:"schema"`
	}

	specSchema struct {
		Ref              string                  `json:"$ref"`
		Title            string                  `json:"title"`
		Description      string                  `json:"description"`
		Type             schemaTypes             `json:"type"`
		Format           string                  `json:"format"`
		ContentEncoding  string                  `json:"contentEncoding"`
		ContentMediaType string                  `json:"contentMediaType"`
		Enum             []any                   `json:"enum"`
		Default          any                     `json:"default"`
		ReadOnly         bool                    `json:"readOnly"`
		MinLength        *uint64                 `json:"minLength"`
		MaxLength        *uint64                 `json:"maxLength"`
		MinItems         *uint64                 `json:"minItems"`
		MaxItems         *uint64                 `json:"maxItems"`
		Minimum          *float64                `json:"minimum"`
		Maximum          *float64                `json:"maximum"`
		Items            *specSchema             `json:"items"`
		AnyOf            []*specSchema           `json:"anyOf"`
		OneOf            []*specSchema           `json:"oneOf"`
		Properties       orderedMap[*specSchema] `json:"properties"`
		Required         []string                `json:"required"`
		XML              *struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			Prefix    string `json:"prefix"`
			Wrapped   bool   `json:"wrapped"`
		} `json:"xml"`
	}
)

// schemaTypes is a schema's type: one name, or a list of them in OpenAPI 3.1.
type schemaTypes []string

func (t *schemaTypes) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*t = schemaTypes{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("type must be a name or a list of names: %w", err)
	}
	*t = many
	return nil
}

// orderedMap is a JSON object that remembers the order of its keys.
type orderedMap[T any] struct {
	Keys   []string
	Values map[string]T
}

func (m *orderedMap[T]) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return errors.New("want a JSON object")
	}
	m.Values = make(map[string]T)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		var v T
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		m.Keys = append(m.Keys, key)
		m.Values[key] = v
	}
	_, err := dec.Token()
	return err
}

func parseSpec(doc []byte) (*apiSpec, error) {
	var spec apiSpec
	if err := json.Unmarshal(doc, &spec); err != nil {
		return nil, fmt.Errorf("parse the OpenAPI document: %w", err)
	}
	return &spec, nil
}

// specMethods are the methods the API uses, in the order the page lists them.
var specMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

func (p *specPathItem) operation(method string) *specOperation {
	switch method {
	case http.MethodGet:
		return p.Get
	case http.MethodPost:
		return p.Post
	case http.MethodPut:
		return p.Put
	case http.MethodPatch:
		return p.Patch
	case http.MethodDelete:
		return p.Delete
	}
	return nil
}

// refName returns the component name a local reference points at.
func refName(ref, kind string) (string, error) {
	prefix := "#/components/" + kind + "/"
	if !strings.HasPrefix(ref, prefix) {
		return "", fmt.Errorf("reference %q is not to a component of kind %s", ref, kind)
	}
	return strings.TrimPrefix(ref, prefix), nil
}

func (s *apiSpec) schema(ref string) (string, *specSchema, error) {
	name, err := refName(ref, "schemas")
	if err != nil {
		return "", nil, err
	}
	schema, ok := s.Components.Schemas[name]
	if !ok {
		return "", nil, fmt.Errorf("no schema %s", name)
	}
	return name, schema, nil
}

func (s *apiSpec) parameter(p *specParameter) (*specParameter, error) {
	if p.Ref == "" {
		return p, nil
	}
	name, err := refName(p.Ref, "parameters")
	if err != nil {
		return nil, err
	}
	if target, ok := s.Components.Parameters[name]; ok {
		return target, nil
	}
	return nil, fmt.Errorf("no parameter %s", name)
}

func (s *apiSpec) response(r *specResponse) (*specResponse, error) {
	if r.Ref == "" {
		return r, nil
	}
	name, err := refName(r.Ref, "responses")
	if err != nil {
		return nil, err
	}
	if target, ok := s.Components.Responses[name]; ok {
		return target, nil
	}
	return nil, fmt.Errorf("no response %s", name)
}

// The help page's view of the document.
type (
	helpView struct {
		Title, Summary, Version string
		Intro                   []helpBlock
		Topics                  []helpTopic
		Groups                  []helpGroup
		Models                  []helpModel
	}

	helpTopic struct {
		ID, Title string
		Blocks    []helpBlock
		// Endpoints are requests the topic describes that are not paths of
		// the API, such as the webhook deliveries the gateway makes.
		Endpoints []helpEndpoint
	}

	// helpBlock is a paragraph, a bulleted list when Items is set, or a
	// preformatted block when Code is set.
	helpBlock struct {
		Text  template.HTML
		Items []template.HTML
		Code  string
	}

	helpGroup struct {
		Name        string
		Description template.HTML
		Endpoints   []helpEndpoint
	}

	helpEndpoint struct {
		ID, Method, Path string
		Summary          template.HTML
		Description      []helpBlock
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

// renderHelp builds the help page from the OpenAPI document.
func renderHelp(doc []byte) ([]byte, error) {
	spec, err := parseSpec(doc)
	if err != nil {
		return nil, err
	}
	view, err := buildHelpView(spec)
	if err != nil {
		return nil, fmt.Errorf("build the help page: %w", err)
	}
	var buf bytes.Buffer
	if err := helpTemplate.Execute(&buf, view); err != nil {
		return nil, fmt.Errorf("render the help page: %w", err)
	}
	return buf.Bytes(), nil
}

func buildHelpView(spec *apiSpec) (*helpView, error) {
	view := &helpView{Title: spec.Info.Title, Summary: spec.Info.Summary, Version: spec.Info.Version}
	intro, topics := markdownSections(spec.Info.Description)
	view.Intro, view.Topics = intro, addSchemeTopics(topics, spec)

	groups := make(map[string]*helpGroup)
	var order []string
	for _, tag := range spec.Tags {
		groups[tag.Name] = &helpGroup{Name: tag.Name, Description: inlineMarkdown(tag.Description)}
		order = append(order, tag.Name)
	}
	for _, path := range spec.Paths.Keys {
		item := spec.Paths.Values[path]
		for _, method := range specMethods {
			op := item.operation(method)
			if op == nil {
				continue
			}
			ep, err := buildEndpoint(spec, path, method, item, op)
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
	if err := addWebhookEndpoints(view, spec); err != nil {
		return nil, err
	}

	schemaNames := make([]string, 0, len(spec.Components.Schemas))
	for name := range spec.Components.Schemas {
		schemaNames = append(schemaNames, name)
	}
	sort.Strings(schemaNames)
	for _, name := range schemaNames {
		model, err := buildModel(spec, name, spec.Components.Schemas[name])
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		view.Models = append(view.Models, model)
	}
	return view, nil
}

func buildEndpoint(spec *apiSpec, path, method string, item *specPathItem, op *specOperation) (helpEndpoint, error) {
	ep := helpEndpoint{
		ID:          op.OperationID,
		Method:      method,
		Path:        path,
		Summary:     inlineMarkdown(op.Summary),
		Description: markdownBlocks(op.Description),
		Public:      (op.Security != nil && len(*op.Security) == 0) || (op.Security == nil && len(spec.Security) == 0),
	}
	if ep.ID == "" {
		ep.ID = strings.ToLower(method) + strings.NewReplacer("/", "-", "{", "", "}", "").Replace(path)
	}
	for _, p := range append(append([]*specParameter{}, item.Parameters...), op.Parameters...) {
		param, err := spec.parameter(p)
		if err != nil {
			return ep, err
		}
		t, err := schemaType(spec, param.Schema)
		if err != nil {
			return ep, fmt.Errorf("parameter %s: %w", param.Name, err)
		}
		ep.Parameters = append(ep.Parameters, helpParameter{
			Name: param.Name, In: param.In, Type: t, Required: param.Required,
			Text: inlineMarkdown(param.Description), Info: schemaInfo(spec, param.Schema),
		})
	}
	if body := op.RequestBody; body != nil {
		hb := &helpBody{Text: inlineMarkdown(body.Description)}
		formats, err := mediaFormats(spec, body.Content)
		if err != nil {
			return ep, fmt.Errorf("request body: %w", err)
		}
		hb.Formats = formats
		models, err := bodyModels(spec, body.Content)
		if err != nil {
			return ep, fmt.Errorf("request body: %w", err)
		}
		hb.Models = models
		ep.Body = hb
		samples, err := bodySamples(op.OperationID, body.Content)
		if err != nil {
			return ep, fmt.Errorf("request body: %w", err)
		}
		ep.Samples = samples
	}
	for _, code := range op.Responses.Keys {
		resp, err := spec.response(op.Responses.Values[code])
		if err != nil {
			return ep, err
		}
		formats, err := mediaFormats(spec, resp.Content)
		if err != nil {
			return ep, fmt.Errorf("response %s: %w", code, err)
		}
		ep.Responses = append(ep.Responses, helpResponse{
			Code: code, Text: inlineMarkdown(resp.Description), Headers: resp.Headers.Keys, Formats: formats,
		})
	}
	return ep, nil
}

// webhookTopicID is the topic that shows the document's webhooks, the
// requests the gateway sends to the tenants' own endpoints.
const webhookTopicID = "topic-webhooks"

// addWebhookEndpoints shows each webhook operation in the Webhooks topic,
// which it creates when the description has none.
func addWebhookEndpoints(view *helpView, spec *apiSpec) error {
	for _, name := range spec.Webhooks.Keys {
		item := spec.Webhooks.Values[name]
		for _, method := range specMethods {
			op := item.operation(method)
			if op == nil {
				continue
			}
			ep, err := buildEndpoint(spec, "<your endpoint URL>", method, item, op)
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

// mediaFormats groups media types by the schema they share, in document order.
func mediaFormats(spec *apiSpec, content orderedMap[*specMediaType]) ([]helpFormat, error) {
	var formats []helpFormat
	for _, mediaType := range content.Keys {
		t, err := schemaType(spec, content.Values[mediaType].Schema)
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
func bodyModels(spec *apiSpec, content orderedMap[*specMediaType]) ([]helpModel, error) {
	var (
		models []helpModel
		seen   = map[string]bool{}
		visit  func(s *specSchema) error
	)
	visit = func(s *specSchema) error {
		if s == nil {
			return nil
		}
		if s.Ref != "" {
			name, target, err := spec.schema(s.Ref)
			if err != nil {
				return err
			}
			if seen[name] || len(target.Properties.Keys) == 0 {
				return nil
			}
			seen[name] = true
			model, err := buildModel(spec, name, target)
			if err != nil {
				return err
			}
			models = append(models, model)
			s = target
		}
		for _, key := range s.Properties.Keys {
			if err := visit(s.Properties.Values[key]); err != nil {
				return err
			}
		}
		return visit(s.Items)
	}
	for _, mediaType := range content.Keys {
		if err := visit(content.Values[mediaType].Schema); err != nil {
			return nil, err
		}
	}
	return models, nil
}

// bodySamples returns the request samples of an operation: the JSON example
// (indented, in the document's key order) and the XML one.
func bodySamples(operationID string, content orderedMap[*specMediaType]) ([]helpSample, error) {
	idPrefix := operationID + "-"
	if operationID == samplesOperation {
		idPrefix = ""
	}
	var samples []helpSample
	for _, mediaType := range content.Keys {
		mt := content.Values[mediaType]
		if len(mt.Example) > 0 && strings.HasSuffix(mediaType, "json") {
			var buf bytes.Buffer
			if err := json.Indent(&buf, mt.Example, "", "  "); err != nil {
				return nil, fmt.Errorf("%s example: %w", mediaType, err)
			}
			samples = append(samples, helpSample{ID: idPrefix + "sample-json", Title: mediaType, Text: preText(buf.String())})
		}
		if mt.XMLExample != "" {
			samples = append(samples, helpSample{ID: idPrefix + "sample-xml", Title: mediaType, Text: preText(strings.TrimSpace(mt.XMLExample))})
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

func buildModel(spec *apiSpec, name string, s *specSchema) (helpModel, error) {
	model := helpModel{ID: "model-" + name, Name: name, Text: inlineMarkdown(s.Description), Info: schemaInfo(spec, s)}
	if s.XML != nil && s.XML.Name != "" {
		model.Info = joinInfo(model.Info, "XML element "+s.XML.Name)
	}
	required := make(map[string]bool, len(s.Required))
	for _, r := range s.Required {
		required[r] = true
	}
	for _, key := range s.Properties.Keys {
		prop := s.Properties.Values[key]
		t, err := schemaType(spec, prop)
		if err != nil {
			return model, fmt.Errorf("%s: %w", key, err)
		}
		text := prop.Description
		if text == "" && prop.Ref != "" {
			if _, target, err := spec.schema(prop.Ref); err == nil {
				text = target.Description
			}
		}
		info := schemaInfo(spec, prop)
		if required[key] {
			info = joinInfo("Required", info)
		}
		if prop.XML != nil && prop.XML.Name != "" {
			info = joinInfo(info, "XML element "+prop.XML.Name)
		}
		model.Fields = append(model.Fields, helpField{Name: key, Type: t, Text: inlineMarkdown(text), Info: info})
	}
	return model, nil
}

// schemaType names a schema's type the way the seed's page does: a model's
// name, "list of" a type, or a primitive with its format.
func schemaType(spec *apiSpec, s *specSchema) (helpType, error) {
	if s == nil {
		return helpType{Label: "any"}, nil
	}
	if s.Ref != "" {
		name, target, err := spec.schema(s.Ref)
		if err != nil {
			return helpType{}, err
		}
		label := name
		if target.Title != "" {
			label = target.Title
		}
		return helpType{Label: label, Link: "#model-" + name}, nil
	}
	var alternatives []*specSchema
	alternatives = append(alternatives, s.AnyOf...)
	alternatives = append(alternatives, s.OneOf...)
	if len(alternatives) > 0 {
		var labels []string
		for _, alt := range alternatives {
			if len(alt.Type) == 1 && alt.Type[0] == "null" {
				continue
			}
			t, err := schemaType(spec, alt)
			if err != nil {
				return helpType{}, err
			}
			labels = append(labels, t.Label)
		}
		return helpType{Label: strings.Join(labels, " or ")}, nil
	}
	var labels []string
	for _, name := range s.Type {
		switch name {
		case "null":
			continue
		case "array":
			item, err := schemaType(spec, s.Items)
			if err != nil {
				return helpType{}, err
			}
			return helpType{Label: "list of " + item.Label, Link: item.Link}, nil
		case "string":
			switch {
			case s.Format == "uuid":
				name = "GUID"
			case s.Format != "":
				name += " (" + s.Format + ")"
			case s.ContentEncoding != "":
				name += " (" + s.ContentEncoding + ")"
			case s.ContentMediaType != "":
				name = "binary"
			}
		}
		labels = append(labels, name)
	}
	if len(labels) == 0 {
		return helpType{Label: "any"}, nil
	}
	return helpType{Label: strings.Join(labels, " or ")}, nil
}

// schemaInfo is the seed page's "additional information": allowed values,
// limits and defaults.
func schemaInfo(spec *apiSpec, s *specSchema) string {
	if s == nil {
		return ""
	}
	var parts []string
	enum := s.Enum
	if s.Ref != "" {
		if _, target, err := spec.schema(s.Ref); err == nil && len(enum) == 0 {
			enum = target.Enum
		}
	}
	if len(enum) > 0 {
		values := make([]string, len(enum))
		for i, v := range enum {
			values[i] = fmt.Sprint(v)
		}
		parts = append(parts, "One of "+strings.Join(values, ", "))
	}
	parts = appendRange(parts, s.MinLength, s.MaxLength, "characters")
	parts = appendRange(parts, s.MinItems, s.MaxItems, "items")
	if s.Minimum != nil && s.Maximum != nil {
		parts = append(parts, fmt.Sprintf("From %v to %v", *s.Minimum, *s.Maximum))
	}
	if s.Default != nil {
		parts = append(parts, fmt.Sprintf("Default %v", s.Default))
	}
	if s.ReadOnly {
		parts = append(parts, "Read-only")
	}
	return strings.Join(parts, ". ")
}

// appendRange describes a length or size limit: "At most 20 items", "At
// least 1 item" or "From 1 to 500 items". A minimum of 0 says nothing.
func appendRange(parts []string, lo, hi *uint64, unit string) []string {
	if lo != nil && *lo == 0 {
		lo = nil
	}
	switch {
	case lo != nil && hi != nil:
		return append(parts, fmt.Sprintf("From %d to %d %s", *lo, *hi, unit))
	case hi != nil:
		return append(parts, fmt.Sprintf("At most %d %s", *hi, unit))
	case lo != nil:
		return append(parts, fmt.Sprintf("At least %d %s", *lo, unit))
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

// addSchemeTopics adds what the security schemes say to the Authentication
// topic, which it creates when the description has none.
func addSchemeTopics(topics []helpTopic, spec *apiSpec) []helpTopic {
	names := make([]string, 0, len(spec.Components.SecuritySchemes))
	for name := range spec.Components.SecuritySchemes {
		names = append(names, name)
	}
	if len(names) == 0 {
		return topics
	}
	sort.Strings(names)
	i := slices.IndexFunc(topics, func(t helpTopic) bool { return t.ID == "topic-authentication" })
	if i < 0 {
		topics = append([]helpTopic{{ID: "topic-authentication", Title: "Authentication"}}, topics...)
		i = 0
	}
	for _, name := range names {
		scheme := spec.Components.SecuritySchemes[name]
		text := fmt.Sprintf("Security scheme `%s`: %s `%s`", name, scheme.Type, scheme.Scheme)
		if scheme.BearerFormat != "" {
			text += ", token format " + scheme.BearerFormat
		}
		blocks := markdownBlocks(scheme.Description)
		if len(blocks) > 0 && blocks[0].Items == nil {
			blocks[0].Text = inlineMarkdown(text+". ") + blocks[0].Text
		} else {
			blocks = append([]helpBlock{{Text: inlineMarkdown(text + ".")}}, blocks...)
		}
		topics[i].Blocks = append(topics[i].Blocks, blocks...)
	}
	return topics
}

// markdownSections splits a description at its "## " headings: the text
// before the first heading, then one topic per heading.
func markdownSections(md string) ([]helpBlock, []helpTopic) {
	var (
		intro  []helpBlock
		topics []helpTopic
	)
	for _, chunk := range markdownChunks(md) {
		if title, ok := strings.CutPrefix(chunk, "## "); ok {
			topics = append(topics, helpTopic{ID: "topic-" + slug(title), Title: title})
			continue
		}
		blocks := markdownBlocks(chunk)
		if len(topics) == 0 {
			intro = append(intro, blocks...)
		} else {
			last := &topics[len(topics)-1]
			last.Blocks = append(last.Blocks, blocks...)
		}
	}
	return intro, topics
}

// markdownChunks splits Markdown at blank lines, keeping each fenced code
// block (between lines that start with ```) whole, blank lines included.
// Chunks other than code blocks are trimmed.
func markdownChunks(md string) []string {
	var (
		chunks  []string
		current []string
		inFence bool
	)
	flush := func() {
		if len(current) > 0 {
			chunks = append(chunks, strings.Join(current, "\n"))
			current = nil
		}
	}
	for _, line := range strings.Split(strings.ReplaceAll(md, "\r\n", "\n"), "\n") {
		fence := strings.HasPrefix(strings.TrimSpace(line), "```")
		switch {
		case inFence:
			current = append(current, line)
			if fence {
				inFence = false
				flush()
			}
		case fence:
			flush()
			current = append(current, strings.TrimSpace(line))
			inFence = true
		case strings.TrimSpace(line) == "":
			flush()
		default:
			current = append(current, strings.TrimSpace(line))
		}
	}
	flush()
	return chunks
}

// markdownBlocks reads the Markdown the document's descriptions use:
// paragraphs separated by blank lines, "- " lists, fenced code blocks and
// `code` spans.
func markdownBlocks(md string) []helpBlock {
	var blocks []helpBlock
	for _, chunk := range markdownChunks(md) {
		lines := strings.Split(chunk, "\n")
		if strings.HasPrefix(lines[0], "```") {
			body := lines[1:]
			if n := len(body); n > 0 && strings.HasPrefix(strings.TrimSpace(body[n-1]), "```") {
				body = body[:n-1]
			}
			blocks = append(blocks, helpBlock{Code: strings.Join(body, "\n")})
			continue
		}
		isList := true
		for _, line := range lines {
			if !strings.HasPrefix(strings.TrimSpace(line), "- ") {
				isList = false
				break
			}
		}
		if !isList {
			blocks = append(blocks, helpBlock{Text: inlineMarkdown(strings.Join(lines, " "))})
			continue
		}
		var items []template.HTML
		for _, line := range lines {
			items = append(items, inlineMarkdown(strings.TrimPrefix(strings.TrimSpace(line), "- ")))
		}
		blocks = append(blocks, helpBlock{Items: items})
	}
	return blocks
}

// inlineMarkdown escapes text for HTML and turns `code` spans into code
// elements. Everything else is shown as written.
func inlineMarkdown(s string) template.HTML {
	var b strings.Builder
	for i, part := range strings.Split(s, "`") {
		escaped := template.HTMLEscapeString(part)
		// An odd number of backticks leaves the last part outside code.
		if i%2 == 1 && i < strings.Count(s, "`") {
			b.WriteString("<code>" + escaped + "</code>")
			continue
		}
		if i%2 == 1 {
			b.WriteString("`")
		}
		b.WriteString(escaped)
	}
	return template.HTML(b.String()) // every part was escaped above
}

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

var helpTemplate = template.Must(template.New("help").Funcs(template.FuncMap{
	"lower": strings.ToLower,
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
}).Parse(helpHTML))

const helpHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}: help</title>
<style>
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; max-width: 72rem; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
h1 { margin-bottom: 0; }
h2 { border-bottom: 2px solid #d8dde6; padding-bottom: .2rem; margin-top: 2.5rem; }
h3 { margin: 2rem 0 .3rem; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 1.05rem; }
h4 { margin: 1.2rem 0 .3rem; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
code { background: #f1f3f7; padding: 0 .2em; border-radius: 3px; }
pre { background: #f6f8fa; border: 1px solid #d8dde6; padding: .8rem; overflow-x: auto; white-space: pre; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
th, td { border: 1px solid #d8dde6; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f1f3f7; }
td.name { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: nowrap; }
.method { display: inline-block; min-width: 4.2rem; padding: 0 .4rem; border-radius: 3px; color: #fff; text-align: center; }
.get { background: #2f7d4f; } .post { background: #2459a8; } .put { background: #8a5a00; } .patch { background: #6b3fa0; } .delete { background: #a8322d; }
.endpoint { border-top: 1px solid #d8dde6; }
.public { color: #5b6475; font-size: .9em; }
.summary { color: #3b4455; }
nav ul { columns: 2; }
</style>
</head>
<body>
<header>
<h1>{{.Title}}</h1>
<p class="summary">{{.Summary}} API version {{.Version}}. The machine-readable description is <a href="/api/openapi.json"><code>/api/openapi.json</code></a> (OpenAPI 3.1).</p>
</header>
<nav>
<h2>Contents</h2>
<ul>
{{- range .Topics}}
<li><a href="#{{.ID}}">{{.Title}}</a></li>
{{- end}}
{{- range .Groups}}{{range .Endpoints}}
<li><a href="#{{.ID}}"><code>{{.Method}} {{.Path}}</code></a></li>
{{- end}}{{end}}
<li><a href="#models">Models</a></li>
</ul>
</nav>
<main>
<section id="overview">
{{- range .Intro}}{{template "block" .}}{{end}}
</section>
{{- range .Topics}}
<section id="{{.ID}}">
<h2>{{.Title}}</h2>
{{- range .Blocks}}{{template "block" .}}{{end}}
{{- range .Endpoints}}{{template "endpoint" .}}{{end}}
</section>
{{- end}}
{{- range .Groups}}
<section id="tag-{{.Name}}">
<h2>{{title .Name}}</h2>
<p>{{.Description}}</p>
{{- range .Endpoints}}{{template "endpoint" .}}{{end}}
</section>
{{- end}}
<section id="models">
<h2>Models</h2>
{{- range .Models}}
<div id="{{.ID}}">{{template "model" .}}</div>
{{- end}}
</section>
</main>
</body>
</html>
{{- define "endpoint"}}
<div class="endpoint" id="{{.ID}}">
<h3><span class="method {{lower .Method}}">{{.Method}}</span> {{.Path}}</h3>
<p class="summary">{{.Summary}}{{if .Public}} <span class="public">No token needed.</span>{{end}}</p>
{{- range .Description}}{{template "block" .}}{{end}}
<h4>URI and header parameters</h4>
{{- if .Parameters}}
<table>
<tr><th>Name</th><th>In</th><th>Type</th><th>Description</th><th>Additional information</th></tr>
{{- range .Parameters}}
<tr><td class="name">{{.Name}}</td><td>{{.In}}</td><td>{{template "type" .Type}}</td><td>{{.Text}}</td><td>{{if .Required}}Required. {{end}}{{.Info}}</td></tr>
{{- end}}
</table>
{{- else}}
<p>None.</p>
{{- end}}
<h4>Body</h4>
{{- with .Body}}
{{- if .Text}}<p>{{.Text}}</p>{{end}}
<table>
<tr><th>Format</th><th>Type</th></tr>
{{- range .Formats}}
<tr><td>{{range $j, $m := .MediaTypes}}{{if $j}}, {{end}}<code>{{$m}}</code>{{end}}</td><td>{{template "type" .Type}}</td></tr>
{{- end}}
</table>
{{- range .Models}}{{template "model" .}}{{end}}
{{- else}}
<p>None.</p>
{{- end}}
{{- range .Samples}}
<h4>Sample: <code>{{.Title}}</code></h4>
<pre id="{{.ID}}">{{.Text}}</pre>
{{- end}}
<h4>Responses</h4>
<table>
<tr><th>Status</th><th>Description</th><th>Format</th><th>Headers</th></tr>
{{- range .Responses}}
<tr><td>{{.Code}}</td><td>{{.Text}}</td><td>{{range .Formats}}{{range $j, $m := .MediaTypes}}{{if $j}}, {{end}}<code>{{$m}}</code>{{end}}: {{template "type" .Type}}<br>{{end}}</td><td>{{range $j, $h := .Headers}}{{if $j}}, {{end}}<code>{{$h}}</code>{{end}}</td></tr>
{{- end}}
</table>
</div>
{{- end}}
{{- define "block"}}
{{- if .Code}}
<pre>{{.Code}}</pre>
{{- else if .Items}}
<ul>
{{- range .Items}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- else}}
<p>{{.Text}}</p>
{{- end}}
{{- end}}
{{- define "type"}}{{if .Link}}<a href="{{.Link}}">{{.Label}}</a>{{else}}{{.Label}}{{end}}{{end}}
{{- define "model"}}
<h4>{{.Name}}</h4>
{{- if .Text}}<p>{{.Text}}</p>{{end}}
{{- if .Info}}<p>{{.Info}}.</p>{{end}}
{{- if .Fields}}
<table>
<tr><th>Name</th><th>Type</th><th>Description</th><th>Additional information</th></tr>
{{- range .Fields}}
<tr><td class="name">{{.Name}}</td><td>{{template "type" .Type}}</td><td>{{.Text}}</td><td>{{.Info}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- end}}
`

package wire

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/domain"
)

// Limits on an XML request. A legitimate MessageComposeModel nests four deep;
// the limits stop hostile documents before they cost memory.
const (
	maxXMLDepth    = 10
	maxXMLElements = 10000
)

// xmlNode is one element of a parsed request. The whole document is parsed
// first so that malformed XML and the document limits are reported before
// any field, whatever their order in the body.
type xmlNode struct {
	name     xml.Name
	attrs    []xml.Attr
	text     []byte
	children []*xmlNode
}

// recordingReader remembers the error its source returned, so that an I/O
// failure (such as http.MaxBytesError) can be told apart from bad XML.
type recordingReader struct {
	r   io.Reader
	err error
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if err != nil && err != io.EOF {
		rr.err = err
	}
	return n, err
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF} //nolint:gochecknoglobals // read-only: a byte sequence compared against

// parseXMLTree reads one XML document into a tree, enforcing the document
// limits and refusing DTDs, so that no entity is ever expanded.
func parseXMLTree(r io.Reader, opts Options) (*xmlNode, error) {
	src := &recordingReader{r: r}
	br := bufio.NewReader(src)
	if head, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(head, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	dec := xml.NewDecoder(br)
	dec.CharsetReader = func(label string, input io.Reader) (io.Reader, error) {
		if opts.UTF16 && strings.HasPrefix(strings.ToLower(label), "utf-16") {
			return input, nil // transcoded to UTF-8 already (utf8XML)
		}
		return nil, domain.FieldError("", "the XML declares encoding %q; send UTF-8 or UTF-16", label)
	}
	var (
		root     *xmlNode
		stack    []*xmlNode
		elements int
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, xmlReadError(err, src.err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, domain.FieldError("", "the body holds more than one root element")
			}
			elements++
			if elements > maxXMLElements {
				return nil, domain.FieldError("", "the body holds more than %d XML elements", maxXMLElements)
			}
			if len(stack) >= maxXMLDepth {
				return nil, domain.FieldError("", "the XML nests deeper than %d elements", maxXMLDepth)
			}
			n := &xmlNode{name: t.Name, attrs: append([]xml.Attr(nil), t.Attr...)}
			if len(stack) == 0 {
				root = n
			} else {
				parent := stack[len(stack)-1]
				parent.children = append(parent.children, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				top.text = append(top.text, t...)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, domain.FieldError("", "the body holds text outside the root element")
			}
		case xml.Directive:
			return nil, domain.FieldError("", "DOCTYPE and entity declarations are not allowed")
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, domain.FieldError("", "processing instructions are not allowed")
			}
		case xml.Comment:
			// Comments carry no data.
		}
	}
	if root == nil {
		return nil, domain.FieldError("", "the body is empty")
	}
	return root, nil
}

// xmlReadError turns a decoder error into an invalid-input error, unless the
// body could not be read at all; that cause is kept for the caller to map.
func xmlReadError(err, readErr error) error {
	var (
		de        *domain.Error
		syntaxErr *xml.SyntaxError
	)
	switch {
	case readErr != nil && errors.Is(err, readErr):
		return fmt.Errorf("read XML body: %w", err)
	case errors.As(err, &de):
		return de
	case errors.As(err, &syntaxErr):
		return domain.FieldError("", "the body is not well-formed XML (line %d): %s", syntaxErr.Line, syntaxErr.Msg)
	}
	return domain.FieldError("", "the body is not acceptable XML: %s", strings.TrimPrefix(err.Error(), "xml: "))
}

// DecodeXML reads a MessageComposeModel in the seed's DataContract XML form.
// Members may come in any order, but each at most once and in its own
// namespace; an element with i:nil="true" is treated as absent.
func DecodeXML(r io.Reader, opts Options) (ComposeModel, error) {
	var m ComposeModel
	err := compose.in.decodeXMLDocument(r, opts, reflect.ValueOf(&m).Elem())
	return m, err
}

// decodeXMLDocument reads a document whose root is b's record into dst.
func (b *binding) decodeXMLDocument(r io.Reader, opts Options, dst reflect.Value) error {
	root, err := parseXMLTree(r, opts)
	if err != nil {
		return err
	}
	rec := b.record
	if root.name.Local != rec.Name || root.name.Space != rec.Space {
		return domain.FieldError("", "the root element must be %s in namespace %s, not %s", rec.Name, rec.Space, describeXMLName(root.name))
	}
	isNil, err := xmlNil(root, "")
	if err != nil {
		return err
	}
	if isNil {
		return domain.FieldError("", "the %s must not be nil", rec.Name)
	}
	return b.decodeXMLMembers(root, "", opts, dst)
}

// decodeXMLMembers checks the children of n against b's members and sets
// each writable one in dst. prefix is the wire path of n plus a dot: "" for
// the root, "to[0]." for a recipient.
func (b *binding) decodeXMLMembers(n *xmlNode, prefix string, opts Options, dst reflect.Value) error {
	if err := xmlContainer(n, strings.TrimSuffix(prefix, ".")); err != nil {
		return err
	}
	seen := make(map[string]bool, len(n.children))
	for _, child := range n.children {
		i, ok := b.byDotNet[child.name.Local]
		if !ok && !opts.Strict && !serverOwned[memberName(child.name.Local)] && !serverOwnedRecipient[memberName(child.name.Local)] {
			continue // a member of a later model version, ignored as DataContractSerializer does
		}
		if !ok {
			local := truncateForError(child.name.Local)
			return domain.FieldError(prefix+snakeCase(local), "element %s is not a member of %s", local, b.record.Name)
		}
		member := b.record.Members[i]
		field := prefix + member.JSON
		if space := b.record.space(member); child.name.Space != space {
			return domain.FieldError(field, "element %s must be in namespace %s, not %s", child.name.Local, space, describeXMLSpace(child.name.Space))
		}
		if seen[child.name.Local] {
			return domain.FieldError(field, "element %s appears more than once", child.name.Local)
		}
		seen[child.name.Local] = true
		isNil, err := xmlNil(child, field)
		if err != nil {
			return err
		}
		if member.ReadOnly {
			// A read-only member echoed back from a response: it must be a
			// plain value, and is then ignored.
			if _, err := xmlString(child, field); err != nil {
				return err
			}
			continue
		}
		if isNil {
			continue
		}
		if err := b.setXML(dst, i, child, field, opts); err != nil {
			return err
		}
	}
	return nil
}

// setXML sets member i of dst from the element n, as its kind is spelled in XML.
func (b *binding) setXML(dst reflect.Value, i int, n *xmlNode, field string, opts Options) error {
	f := dst.FieldByIndex(b.field[i])
	switch kind := b.record.Members[i].Kind; kind {
	case KindText, KindToken:
		read := xmlString
		if kind == KindToken {
			read = xmlToken
		}
		s, err := read(n, field)
		f.SetString(s)
		return err
	case KindBool:
		v, err := xmlBool(n, field)
		if err != nil {
			return err
		}
		setBool(f, v)
	case KindImportance:
		raw, err := xmlImportance(n, field)
		if err != nil {
			return err
		}
		f.SetBytes(raw)
	case KindVersion:
		s, err := xmlString(n, field)
		if err != nil {
			return err
		}
		// xs:base64Binary allows whitespace anywhere, such as line breaks.
		ts := TS(strings.Join(strings.Fields(s), ""))
		f.Set(reflect.ValueOf(&ts))
	case KindGUIDs:
		list, err := xmlGUIDs(n, field)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(list))
	case KindRecords:
		list, err := b.item[i].xmlRecords(n, field, opts)
		if err != nil {
			return err
		}
		f.Set(list)
	default:
		return fmt.Errorf("decode XML: no reader for member %s of kind %d", b.record.Members[i].DotNet, kind)
	}
	return nil
}

// xmlRecords reads a collection of b's record. A nil item is kept as an
// empty one, as JSON keeps null, so indexes in later errors still match the
// document.
func (b *binding) xmlRecords(n *xmlNode, field string, opts Options) (reflect.Value, error) {
	if err := xmlContainer(n, field); err != nil {
		return reflect.Value{}, err
	}
	rec := b.record
	list := reflect.MakeSlice(reflect.SliceOf(b.typ), 0, len(n.children))
	for i, item := range n.children {
		itemField := field + "[" + strconv.Itoa(i) + "]"
		if item.name.Local != rec.Name || item.name.Space != rec.Space {
			return reflect.Value{}, domain.FieldError(itemField, "must be a %s element in namespace %s, not %s", rec.Name, rec.Space, describeXMLName(item.name))
		}
		v := reflect.New(b.typ).Elem()
		isNil, err := xmlNil(item, itemField)
		if err != nil {
			return reflect.Value{}, err
		}
		if !isNil {
			if err := b.decodeXMLMembers(item, itemField+".", opts, v); err != nil {
				return reflect.Value{}, err
			}
		}
		list = reflect.Append(list, v)
	}
	return list, nil
}

// xmlGUIDs reads a collection of GUIDs as DataContract writes it: guid
// elements in the serialization arrays namespace. A nil item is kept as an
// empty string for the domain to reject with its index.
func xmlGUIDs(n *xmlNode, field string) ([]string, error) {
	if err := xmlContainer(n, field); err != nil {
		return nil, err
	}
	list := make([]string, 0, len(n.children))
	for i, item := range n.children {
		itemField := field + "[" + strconv.Itoa(i) + "]"
		if item.name.Local != "guid" || item.name.Space != NamespaceArrays {
			return nil, domain.FieldError(itemField, "must be a guid element in namespace %s, not %s", NamespaceArrays, describeXMLName(item.name))
		}
		isNil, err := xmlNil(item, itemField)
		if err != nil {
			return nil, err
		}
		var id string
		if !isNil {
			if id, err = xmlToken(item, itemField); err != nil {
				return nil, err
			}
		}
		list = append(list, id)
	}
	return list, nil
}

// xmlImportance returns the importance as the JSON string parseImportanceJSON
// reads, after checking it here so the error names the element.
func xmlImportance(n *xmlNode, field string) (json.RawMessage, error) {
	s, err := xmlToken(n, field)
	if err != nil {
		return nil, err
	}
	if _, err := domain.ParseImportance(s); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("quote importance: %w", err)
	}
	return raw, nil
}

// xmlNil reports whether n carries i:nil="true". Namespace declarations are
// the only other attributes allowed, and a nil element must be empty.
func xmlNil(n *xmlNode, field string) (bool, error) {
	isNil := false
	for _, a := range n.attrs {
		switch {
		case a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns":
			continue
		case a.Name.Space == NamespaceXSI && a.Name.Local == "nil":
			v, ok := parseXSDBool(a.Value)
			if !ok {
				return false, domain.FieldError(field, "i:nil must be true or false, not %q", a.Value)
			}
			isNil = v
		default:
			return false, domain.FieldError(field, "element %s has an unexpected attribute %s", n.name.Local, describeXMLName(a.Name))
		}
	}
	if isNil && (len(n.children) > 0 || len(bytes.TrimSpace(n.text)) > 0) {
		return false, domain.FieldError(field, "element %s is nil but has content", n.name.Local)
	}
	return isNil, nil
}

// xmlContainer requires n to hold only elements.
func xmlContainer(n *xmlNode, field string) error {
	if len(bytes.TrimSpace(n.text)) > 0 {
		return domain.FieldError(field, "element %s must hold elements, not text", n.name.Local)
	}
	return nil
}

// xmlString returns the text of a simple element exactly as sent.
func xmlString(n *xmlNode, field string) (string, error) {
	if len(n.children) > 0 {
		return "", domain.FieldError(field, "element %s must hold a value, not elements", n.name.Local)
	}
	return string(n.text), nil
}

// xmlToken returns the text of a simple element with surrounding whitespace
// removed, as XML Schema does for GUIDs, dates and numbers.
func xmlToken(n *xmlNode, field string) (string, error) {
	s, err := xmlString(n, field)
	return strings.TrimSpace(s), err
}

func xmlBool(n *xmlNode, field string) (bool, error) {
	s, err := xmlString(n, field)
	if err != nil {
		return false, err
	}
	b, ok := parseXSDBool(s)
	if !ok {
		return false, domain.FieldError(field, "must be true or false (or 1 or 0), not %q", truncateForError(s))
	}
	return b, nil
}

// parseXSDBool accepts the lexical forms of xs:boolean.
func parseXSDBool(s string) (value, ok bool) {
	switch strings.TrimSpace(s) {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return false, false
}

func describeXMLName(n xml.Name) string {
	return n.Local + " in " + describeXMLSpace(n.Space)
}

func describeXMLSpace(space string) string {
	if space == "" {
		return "no namespace"
	}
	return "namespace " + space
}

// snakeCase spells a PascalCase or camelCase name the way the JSON wire
// model does, so unknown names are reported in one style.
func snakeCase(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		isUpper := r >= 'A' && r <= 'Z'
		if isUpper && i > 0 {
			prev := rs[i-1]
			prevLowerOrDigit := prev >= 'a' && prev <= 'z' || prev >= '0' && prev <= '9'
			prevUpper := prev >= 'A' && prev <= 'Z'
			nextLower := i+1 < len(rs) && rs[i+1] >= 'a' && rs[i+1] <= 'z'
			if prevLowerOrDigit || prevUpper && nextLower {
				b.WriteByte('_')
			}
		}
		if isUpper {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// truncateForError keeps echoed input short in error messages.
func truncateForError(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// The XML namespaces of the seed API's DataContract wire format, and of RFC 9457 problems.
const (
	nsModels  = "http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models"
	nsBase    = "http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models.Base"
	nsArrays  = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
	nsXSI     = "http://www.w3.org/2001/XMLSchema-instance"
	nsProblem = "urn:ietf:rfc:7807"
)

// Limits on an XML request. A legitimate MessageComposeModel nests four deep;
// the limits stop hostile documents before they cost memory.
const (
	maxXMLDepth    = 10
	maxXMLElements = 10000
)

// xmlDateLayout is how .NET's DataContractSerializer writes a DateTime:
// seven fractional digits, then the offset.
const xmlDateLayout = "2006-01-02T15:04:05.0000000Z07:00"

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

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// parseXMLTree reads one XML document into a tree, enforcing the document
// limits and refusing DTDs, so that no entity is ever expanded.
func parseXMLTree(r io.Reader, opts decodeOptions) (*xmlNode, error) {
	src := &recordingReader{r: r}
	br := bufio.NewReader(src)
	if head, err := br.Peek(len(utf8BOM)); err == nil && bytes.Equal(head, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	dec := xml.NewDecoder(br)
	dec.CharsetReader = func(label string, input io.Reader) (io.Reader, error) {
		if opts.utf16 && strings.HasPrefix(strings.ToLower(label), "utf-16") {
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
		if err == io.EOF {
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

// xmlMember describes one child element a DataContract type accepts.
// Read-only members are written by the gateway and ignored on input, so a
// response can be sent back as a request.
type xmlMember struct {
	space    string
	field    string
	readOnly bool
}

var composeMembers = map[string]xmlMember{
	"Id":             {nsBase, "id", false},
	"SubscriptionId": {nsBase, "subscription_id", false},
	"Ts":             {nsBase, "ts", false},

	"Attachments":       {nsModels, "attachments", false},
	"Bcc":               {nsModels, "bcc", false},
	"Body":              {nsModels, "body", false},
	"CanDelete":         {nsModels, "can_delete", false},
	"Cc":                {nsModels, "cc", false},
	"CreatedDate":       {nsModels, "created_date", false},
	"Importance":        {nsModels, "importance", false},
	"MessageId":         {nsModels, "message_id", false},
	"ParentId":          {nsModels, "parent_id", false},
	"References":        {nsModels, "references", false},
	"Send":              {nsModels, "send", false},
	"SendAt":            {nsModels, "send_at", false},
	"SenderAccountId":   {nsModels, "sender_account_id", false},
	"SenderDisplayName": {nsModels, "sender_display_name", false},
	"SenderEmail":       {nsModels, "sender_email", false},
	"Subject":           {nsModels, "subject", false},
	"To":                {nsModels, "to", false},

	"ConversationId":   {nsModels, "conversation_id", true},
	"DkimResult":       {nsModels, "dkim_result", true},
	"HeaderMessageId":  {nsModels, "header_message_id", true},
	"HeaderReferences": {nsModels, "header_references", true},
	"InReplyTo":        {nsModels, "in_reply_to", true},
	"LastError":        {nsModels, "last_error", true},
	"State":            {nsModels, "state", true},
	"TextBody":         {nsModels, "text_body", true},
	"UpdatedAt":        {nsModels, "updated_at", true},
}

var recipientMembers = map[string]xmlMember{
	"AccountId":    {nsModels, "account_id", false},
	"DisplayName":  {nsModels, "display_name", false},
	"EmailAddress": {nsModels, "email_address", false},

	"Attempts":          {nsModels, "attempts", true},
	"LastCode":          {nsModels, "last_code", true},
	"LastReply":         {nsModels, "last_reply", true},
	"PossibleDuplicate": {nsModels, "possible_duplicate", true},
	"Status":            {nsModels, "status", true},
}

// setComposeXML sets the member of m that the element n (named local) carries.
func setComposeXML(m *composeModel, local string, n *xmlNode, field string, opts decodeOptions) error {
	var err error
	switch local {
	case "Id":
		m.ID, err = xmlToken(n, field)
	case "SubscriptionId":
		m.SubscriptionID, err = xmlToken(n, field)
	case "Ts":
		var ts string
		ts, err = xmlString(n, field)
		// xs:base64Binary allows whitespace anywhere, such as line breaks.
		wts := wireTS(strings.Join(strings.Fields(ts), ""))
		m.TS = &wts
	case "Attachments":
		m.Attachments, err = xmlGUIDs(n, field)
	case "Bcc":
		m.Bcc, err = xmlRecipients(n, field, opts)
	case "Body":
		m.Body, err = xmlString(n, field)
	case "CanDelete":
		var b bool
		b, err = xmlBool(n, field)
		m.CanDelete = &b
	case "Cc":
		m.Cc, err = xmlRecipients(n, field, opts)
	case "CreatedDate":
		m.CreatedDate, err = xmlToken(n, field)
	case "Importance":
		m.Importance, err = xmlImportance(n, field)
	case "MessageId":
		m.MessageID, err = xmlString(n, field)
	case "ParentId":
		m.ParentID, err = xmlToken(n, field)
	case "References":
		m.References, err = xmlString(n, field)
	case "Send":
		m.Send, err = xmlBool(n, field)
	case "SendAt":
		m.SendAt, err = xmlString(n, field)
	case "SenderAccountId":
		m.SenderAccountID, err = xmlToken(n, field)
	case "SenderDisplayName":
		m.SenderDisplayName, err = xmlString(n, field)
	case "SenderEmail":
		m.SenderEmail, err = xmlString(n, field)
	case "Subject":
		m.Subject, err = xmlString(n, field)
	case "To":
		m.To, err = xmlRecipients(n, field, opts)
	default:
		return fmt.Errorf("decode XML: no setter for member %s", local)
	}
	return err
}

// setRecipientXML sets the member of r that the element n (named local) carries.
func setRecipientXML(r *recipientModel, local string, n *xmlNode, field string) error {
	var err error
	switch local {
	case "AccountId":
		r.AccountID, err = xmlToken(n, field)
	case "DisplayName":
		r.DisplayName, err = xmlString(n, field)
	case "EmailAddress":
		r.EmailAddress, err = xmlString(n, field)
	default:
		return fmt.Errorf("decode XML: no setter for recipient member %s", local)
	}
	return err
}

// decodeXML reads a MessageComposeModel in the seed's DataContract XML form.
// Members may come in any order, but each at most once and in its own
// namespace; an element with i:nil="true" is treated as absent.
func decodeXML(r io.Reader, opts decodeOptions) (composeModel, error) {
	var m composeModel
	root, err := parseXMLTree(r, opts)
	if err != nil {
		return m, err
	}
	if root.name.Local != "MessageComposeModel" || root.name.Space != nsModels {
		return m, domain.FieldError("", "the root element must be MessageComposeModel in namespace %s, not %s", nsModels, describeXMLName(root.name))
	}
	isNil, err := xmlNil(root, "")
	if err != nil {
		return m, err
	}
	if isNil {
		return m, domain.FieldError("", "the MessageComposeModel must not be nil")
	}
	err = decodeXMLMembers(root, "", "MessageComposeModel", composeMembers, opts, func(local string, n *xmlNode, field string) error {
		return setComposeXML(&m, local, n, field, opts)
	})
	return m, err
}

// decodeXMLMembers checks the children of n against members and passes each
// writable one to set. prefix is the wire path of n plus a dot: "" for the
// root, "to[0]." for a recipient.
func decodeXMLMembers(n *xmlNode, prefix, typeName string, members map[string]xmlMember, opts decodeOptions, set func(local string, child *xmlNode, field string) error) error {
	if err := xmlContainer(n, strings.TrimSuffix(prefix, ".")); err != nil {
		return err
	}
	seen := make(map[string]bool, len(n.children))
	for _, child := range n.children {
		member, ok := members[child.name.Local]
		if !ok && !opts.strict && !serverOwned[memberName(child.name.Local)] && !serverOwnedRecipient[memberName(child.name.Local)] {
			continue // a member of a later model version, ignored as DataContractSerializer does
		}
		if !ok {
			local := truncateForError(child.name.Local)
			return domain.FieldError(prefix+snakeCase(local), "element %s is not a member of %s", local, typeName)
		}
		field := prefix + member.field
		if child.name.Space != member.space {
			return domain.FieldError(field, "element %s must be in namespace %s, not %s", child.name.Local, member.space, describeXMLSpace(child.name.Space))
		}
		if seen[child.name.Local] {
			return domain.FieldError(field, "element %s appears more than once", child.name.Local)
		}
		seen[child.name.Local] = true
		isNil, err := xmlNil(child, field)
		if err != nil {
			return err
		}
		if member.readOnly {
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
		if err := set(child.name.Local, child, field); err != nil {
			return err
		}
	}
	return nil
}

// xmlRecipients reads a collection of MessageRecipientModel. A nil item is
// kept as an empty recipient, as JSON keeps null, so indexes in later errors
// still match the document.
func xmlRecipients(n *xmlNode, field string, opts decodeOptions) ([]recipientModel, error) {
	if err := xmlContainer(n, field); err != nil {
		return nil, err
	}
	list := make([]recipientModel, 0, len(n.children))
	for i, item := range n.children {
		itemField := field + "[" + strconv.Itoa(i) + "]"
		if item.name.Local != "MessageRecipientModel" || item.name.Space != nsModels {
			return nil, domain.FieldError(itemField, "must be a MessageRecipientModel element in namespace %s, not %s", nsModels, describeXMLName(item.name))
		}
		var r recipientModel
		isNil, err := xmlNil(item, itemField)
		if err != nil {
			return nil, err
		}
		if !isNil {
			err := decodeXMLMembers(item, itemField+".", "MessageRecipientModel", recipientMembers, opts, func(local string, n *xmlNode, field string) error {
				return setRecipientXML(&r, local, n, field)
			})
			if err != nil {
				return nil, err
			}
		}
		list = append(list, r)
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
		if item.name.Local != "guid" || item.name.Space != nsArrays {
			return nil, domain.FieldError(itemField, "must be a guid element in namespace %s, not %s", nsArrays, describeXMLName(item.name))
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
		case a.Name.Space == nsXSI && a.Name.Local == "nil":
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

// xmlWriter builds DataContract-style XML. Names are constants of this file,
// so only text needs escaping.
type xmlWriter struct {
	buf bytes.Buffer
}

func (w *xmlWriter) open(tag string)  { w.buf.WriteString("<" + tag + ">") }
func (w *xmlWriter) close(tag string) { w.buf.WriteString("</" + tag + ">") }

func (w *xmlWriter) text(s string) {
	// EscapeText only fails when the writer does; a bytes.Buffer does not.
	_ = xml.EscapeText(&w.buf, []byte(s))
}

// value writes <name attrs>text</name>; attrs is either empty or starts with a space.
func (w *xmlWriter) value(name, attrs, s string) {
	w.buf.WriteString("<" + name + attrs + ">")
	w.text(s)
	w.close(name)
}

func (w *xmlWriter) nilValue(name string) { w.buf.WriteString("<" + name + ` i:nil="true"/>`) }

func (w *xmlWriter) optionalGUID(name string, id *uuid.UUID) {
	if id == nil {
		w.nilValue(name)
		return
	}
	w.value(name, "", id.String())
}

func xmlDate(t time.Time) string { return t.Format(xmlDateLayout) }

// encodeXML writes a message in the seed's DataContract shape. Members come
// in the order DataContractSerializer uses: base class first (Id,
// SubscriptionId, Ts in the Base namespace), then CanDelete and Subject as
// the seed sample shows them, then the rest alphabetically (ordinal), with
// the gateway's read-only members in their alphabetical places.
func encodeXML(v messageView) ([]byte, error) {
	var w xmlWriter
	if err := w.message(v, rootNamespaces); err != nil {
		return nil, err
	}
	return w.buf.Bytes(), nil
}

// rootNamespaces are the declarations on a document's root element.
const rootNamespaces = ` xmlns:i="` + nsXSI + `" xmlns="` + nsModels + `"`

// message writes one MessageComposeModel element; attrs declares the
// namespaces when it is the root, "" when it is nested in a list.
func (w *xmlWriter) message(v messageView, attrs string) error {
	importance := domain.Importance(v.Importance)
	if !importance.Valid() {
		return fmt.Errorf("encode XML: message %s has importance %d", v.ID, v.Importance)
	}
	w.buf.WriteString(`<MessageComposeModel` + attrs + `>`)
	baseNS := ` xmlns="` + nsBase + `"`
	w.value("Id", baseNS, v.ID.String())
	w.value("SubscriptionId", baseNS, v.SubscriptionID.String())
	if v.TS == "" {
		w.buf.WriteString(`<Ts` + baseNS + ` i:nil="true"/>`)
	} else {
		w.value("Ts", baseNS, v.TS)
	}
	w.value("CanDelete", "", strconv.FormatBool(v.CanDelete))
	w.value("Subject", "", v.Subject)
	if v.Attachments == nil {
		w.nilValue("Attachments")
	} else {
		w.buf.WriteString(`<Attachments xmlns:d2p1="` + nsArrays + `">`)
		for _, id := range v.Attachments {
			w.value("d2p1:guid", "", id.String())
		}
		w.close("Attachments")
	}
	w.recipients("Bcc", v.Bcc)
	w.value("Body", "", v.Body)
	w.recipients("Cc", v.Cc)
	w.value("ConversationId", "", v.ConversationID.String())
	w.value("CreatedDate", "", xmlDate(v.CreatedDate))
	w.value("HeaderMessageId", "", v.HeaderMessageID)
	w.value("HeaderReferences", "", v.HeaderReferences)
	if v.DKIMResult != "" {
		w.value("DkimResult", "", v.DKIMResult)
	}
	w.value("Importance", "", importance.String())
	w.value("InReplyTo", "", v.InReplyTo)
	if v.LastError != "" {
		w.value("LastError", "", v.LastError)
	}
	w.value("MessageId", "", v.MessageID)
	w.optionalGUID("ParentId", v.ParentID)
	w.value("References", "", v.References)
	w.value("Send", "", strconv.FormatBool(v.Send))
	if v.SendAt != nil {
		w.value("SendAt", "", xmlDate(*v.SendAt))
	}
	w.optionalGUID("SenderAccountId", v.SenderAccountID)
	w.value("SenderDisplayName", "", v.SenderDisplayName)
	w.value("SenderEmail", "", v.SenderEmail)
	w.value("State", "", string(v.State))
	if v.TextBody != "" {
		w.value("TextBody", "", v.TextBody)
	}
	w.recipients("To", v.To)
	w.value("UpdatedAt", "", xmlDate(v.UpdatedAt))
	w.close("MessageComposeModel")
	return nil
}

func (w *xmlWriter) recipients(name string, list []recipientView) {
	if list == nil {
		w.nilValue(name)
		return
	}
	w.open(name)
	for _, r := range list {
		w.open("MessageRecipientModel")
		w.optionalGUID("AccountId", r.AccountID)
		w.value("Attempts", "", strconv.Itoa(r.Attempts))
		w.value("DisplayName", "", r.DisplayName)
		w.value("EmailAddress", "", r.EmailAddress)
		if r.LastCode != 0 {
			w.value("LastCode", "", strconv.Itoa(r.LastCode))
		}
		if r.LastReply != "" {
			w.value("LastReply", "", r.LastReply)
		}
		if r.PossibleDuplicate {
			w.value("PossibleDuplicate", "", "true")
		}
		w.value("Status", "", string(r.Status))
		w.close("MessageRecipientModel")
	}
	w.close(name)
}

// encodeProblemXML writes p in the XML form of RFC 9457 (appendix B), with
// the gateway's extension members as further child elements. Empty members
// are left out.
func encodeProblemXML(p Problem) ([]byte, error) {
	var w xmlWriter
	w.buf.WriteString(xml.Header)
	w.buf.WriteString(`<problem xmlns="` + nsProblem + `">`)
	optional := func(name, s string) {
		if s != "" {
			w.value(name, "", s)
		}
	}
	optional("type", p.Type)
	optional("title", p.Title)
	if p.Status != 0 {
		w.value("status", "", strconv.Itoa(p.Status))
	}
	optional("detail", p.Detail)
	optional("instance", p.Instance)
	optional("code", p.Code)
	optional("field", p.Field)
	optional("ts", p.TS)
	optional("request_id", p.RequestID)
	w.close("problem")
	return w.buf.Bytes(), nil
}

// Package wire is the seed API's wire model and its codecs: each member of
// MessageComposeModel and MessageRecipientModel is declared once here, and
// the JSON, XML and form codecs, the merge-patch base and the OpenAPI checks
// all read that declaration.
package wire

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// The XML namespaces of the seed API's DataContract wire format: its
// models, their base class, .NET's serialization arrays and XML Schema
// instances (for i:nil).
const (
	NamespaceModels = "http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models"
	NamespaceBase   = "http://schemas.datacontract.org/2004/07/CompleteEmpireApp.Api.Models.Base"
	NamespaceArrays = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
	NamespaceXSI    = "http://www.w3.org/2001/XMLSchema-instance"
)

// Kind is how a member's value is spelled on the wire, beyond its Go type.
type Kind int

// The kinds of member a record may declare.
const (
	// KindText is free text, kept exactly as sent.
	KindText Kind = iota
	// KindToken is a GUID or a date: XML Schema drops the white space around it.
	KindToken
	// KindBool is xs:boolean in XML; forms also take on, and MVC's checkbox pair.
	KindBool
	// KindNumber is a whole number the gateway writes.
	KindNumber
	// KindImportance is a number (0, 1, 2) in JSON and a name (Low, Normal, High) in XML.
	KindImportance
	// KindVersion is ts: opaque bytes as base64, nil in XML when absent.
	KindVersion
	// KindGUIDs is a collection of GUIDs, in XML guid items in the arrays namespace.
	KindGUIDs
	// KindRecords is a collection of the member's Item record.
	KindRecords
)

// Member declares one member of a DataContract type.
type Member struct {
	// JSON is the member's JSON name, also its name in forms, errors and OpenAPI.
	JSON string
	// DotNet is the .NET property name: the XML element, also accepted as a form key.
	DotNet string
	// Space is the XML namespace when it is not the record's (a base class's members).
	Space string
	// Order sorts members as DataContractSerializer does: base-class members
	// lowest, then by DataMember order, then ordinally by DotNet name.
	Order int
	// ReadOnly members are written by the gateway and ignored on input, so a
	// response can be sent back as a request; input types do not hold them.
	ReadOnly bool
	// OmitEmpty leaves the member out of XML when it is empty, instead of
	// writing it empty or nil.
	OmitEmpty bool
	Kind      Kind
	// Item is the record of each element of a KindRecords member.
	Item *Record
}

// Record declares a DataContract type: its XML element, namespace and
// members, in the order of its JSON form.
type Record struct {
	Name    string
	Space   string
	Members []Member
}

// space is the XML namespace of m, a member of r.
func (r *Record) space(m Member) string {
	if m.Space != "" {
		return m.Space
	}
	return r.Space
}

// recipientRecord declares MessageRecipientModel. Members come in the order
// of the JSON form; the XML order is derived.
func recipientRecord() *Record {
	return &Record{Name: "MessageRecipientModel", Space: NamespaceModels, Members: []Member{
		{JSON: "display_name", DotNet: "DisplayName", Kind: KindText},
		{JSON: "email_address", DotNet: "EmailAddress", Kind: KindText},
		{JSON: "account_id", DotNet: "AccountId", Kind: KindToken},

		{JSON: "status", DotNet: "Status", ReadOnly: true, Kind: KindText},
		{JSON: "attempts", DotNet: "Attempts", ReadOnly: true, Kind: KindNumber},
		{JSON: "last_code", DotNet: "LastCode", ReadOnly: true, OmitEmpty: true, Kind: KindNumber},
		{JSON: "last_reply", DotNet: "LastReply", ReadOnly: true, OmitEmpty: true, Kind: KindText},
		{JSON: "possible_duplicate", DotNet: "PossibleDuplicate", ReadOnly: true, OmitEmpty: true, Kind: KindBool},
	}}
}

// composeRecord declares MessageComposeModel. Id, SubscriptionId and Ts
// belong to the seed's base class (namespace ...Models.Base) and CanDelete
// and Subject come next, as the seed's sample shows; the rest follow by name.
func composeRecord() *Record {
	recipient := recipientRecord()
	return &Record{Name: "MessageComposeModel", Space: NamespaceModels, Members: []Member{
		{JSON: "sender_email", DotNet: "SenderEmail", Order: 2, Kind: KindText},
		{JSON: "sender_display_name", DotNet: "SenderDisplayName", Order: 2, Kind: KindText},
		{JSON: "sender_account_id", DotNet: "SenderAccountId", Order: 2, Kind: KindToken},
		{JSON: "to", DotNet: "To", Order: 2, Kind: KindRecords, Item: recipient},
		{JSON: "cc", DotNet: "Cc", Order: 2, Kind: KindRecords, Item: recipient},
		{JSON: "bcc", DotNet: "Bcc", Order: 2, Kind: KindRecords, Item: recipient},
		{JSON: "importance", DotNet: "Importance", Order: 2, Kind: KindImportance},
		{JSON: "message_id", DotNet: "MessageId", Order: 2, Kind: KindText},
		{JSON: "references", DotNet: "References", Order: 2, Kind: KindText},
		{JSON: "body", DotNet: "Body", Order: 2, Kind: KindText},
		{JSON: "attachments", DotNet: "Attachments", Order: 2, Kind: KindGUIDs},
		{JSON: "parent_id", DotNet: "ParentId", Order: 2, Kind: KindToken},
		{JSON: "created_date", DotNet: "CreatedDate", Order: 2, Kind: KindToken},
		{JSON: "send", DotNet: "Send", Order: 2, Kind: KindBool},
		{JSON: "send_at", DotNet: "SendAt", Order: 2, OmitEmpty: true, Kind: KindText},
		{JSON: "subject", DotNet: "Subject", Order: 1, Kind: KindText},
		{JSON: "can_delete", DotNet: "CanDelete", Order: 1, Kind: KindBool},
		{JSON: "id", DotNet: "Id", Space: NamespaceBase, Kind: KindToken},
		{JSON: "subscription_id", DotNet: "SubscriptionId", Space: NamespaceBase, Kind: KindToken},
		{JSON: "ts", DotNet: "Ts", Space: NamespaceBase, Kind: KindVersion},

		{JSON: "header_message_id", DotNet: "HeaderMessageId", Order: 2, ReadOnly: true, Kind: KindText},
		{JSON: "header_references", DotNet: "HeaderReferences", Order: 2, ReadOnly: true, Kind: KindText},
		{JSON: "state", DotNet: "State", Order: 2, ReadOnly: true, Kind: KindText},
		{JSON: "in_reply_to", DotNet: "InReplyTo", Order: 2, ReadOnly: true, Kind: KindText},
		{JSON: "conversation_id", DotNet: "ConversationId", Order: 2, ReadOnly: true, Kind: KindToken},
		{JSON: "updated_at", DotNet: "UpdatedAt", Order: 2, ReadOnly: true, Kind: KindToken},
		{JSON: "last_error", DotNet: "LastError", Order: 2, ReadOnly: true, OmitEmpty: true, Kind: KindText},
		{JSON: "text_body", DotNet: "TextBody", Order: 2, ReadOnly: true, OmitEmpty: true, Kind: KindText},
		{JSON: "dkim_result", DotNet: "DkimResult", Order: 2, ReadOnly: true, OmitEmpty: true, Kind: KindText},
	}}
}

// ComposeDeclaration returns the declaration of MessageComposeModel, for
// checks such as the OpenAPI document's against it.
func ComposeDeclaration() Record { return *composeRecord() }

// SchemaProperty is one property an OpenAPI schema of a record must list,
// with the xml object that describes it.
type SchemaProperty struct {
	Name string
	// XMLName and XMLNamespace are the element; XMLNamespace is empty when
	// the element is in the record's namespace.
	XMLName, XMLNamespace string
	// Wrapped says the member is a collection whose items are child elements.
	Wrapped bool
	// Item is the record of a collection's items, nil for other members.
	Item     *Record
	ReadOnly bool
}

// SchemaProperties lists the properties of r's OpenAPI schema in the
// declared order: every member for an answer, the writable ones for input.
func (r Record) SchemaProperties(answer bool) []SchemaProperty {
	var out []SchemaProperty
	for _, m := range r.Members {
		if m.ReadOnly && !answer {
			continue
		}
		p := SchemaProperty{Name: m.JSON, XMLName: m.DotNet, XMLNamespace: m.Space, ReadOnly: m.ReadOnly,
			Wrapped: m.Kind == KindRecords || m.Kind == KindGUIDs, Item: m.Item}
		out = append(out, p)
	}
	return out
}

// binding ties a record to a Go struct type: the field that holds each
// member. An input type holds the writable members, a view type all of them.
type binding struct {
	record *Record
	typ    reflect.Type
	// field is the struct field index of each member; nil when the type
	// does not hold it (a read-only member of an input type).
	field [][]int
	// item is the binding of each KindRecords member's element type.
	item []*binding
	// xmlOrder lists member indexes in DataContractSerializer's order.
	xmlOrder []int
	// byDotNet finds a member by its XML element name.
	byDotNet map[string]int
}

// The Go types the codecs recognise in bound structs, compared and never written.
var (
	typeString     = reflect.TypeFor[string]()          //nolint:gochecknoglobals // read-only: a reflect type
	typeRawMessage = reflect.TypeFor[json.RawMessage]() //nolint:gochecknoglobals // read-only: a reflect type
	typeUUID       = reflect.TypeFor[uuid.UUID]()       //nolint:gochecknoglobals // read-only: a reflect type
	typeTime       = reflect.TypeFor[time.Time]()       //nolint:gochecknoglobals // read-only: a reflect type
	typeTS         = reflect.TypeFor[TS]()              //nolint:gochecknoglobals // read-only: a reflect type
)

// bind checks that typ, a struct, holds exactly the members of r (the
// writable ones when input) under their JSON names and in their order, each
// in a Go type its codecs handle.
func bind(r *Record, typ reflect.Type, input bool) (*binding, error) {
	if typ.Kind() != reflect.Struct {
		return nil, fmt.Errorf("wire: %s is bound to %s, not a struct", r.Name, typ)
	}
	b := &binding{record: r, typ: typ, field: make([][]int, len(r.Members)), item: make([]*binding, len(r.Members)), byDotNet: map[string]int{}}
	byJSON := map[string]int{}
	for i, m := range r.Members {
		if _, dup := byJSON[m.JSON]; dup {
			return nil, fmt.Errorf("wire: %s declares %s twice", r.Name, m.JSON)
		}
		if _, dup := b.byDotNet[m.DotNet]; dup {
			return nil, fmt.Errorf("wire: %s declares %s twice", r.Name, m.DotNet)
		}
		byJSON[m.JSON], b.byDotNet[m.DotNet] = i, i
		b.xmlOrder = append(b.xmlOrder, i)
	}
	slices.SortStableFunc(b.xmlOrder, func(x, y int) int {
		mx, my := r.Members[x], r.Members[y]
		if mx.Order != my.Order {
			return mx.Order - my.Order
		}
		return strings.Compare(mx.DotNet, my.DotNet)
	})
	last := -1
	for _, f := range reflect.VisibleFields(typ) {
		if f.Anonymous || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		i, ok := byJSON[name]
		if !ok {
			return nil, fmt.Errorf("wire: %s.%s (json %q) is not a declared member of %s", typ, f.Name, name, r.Name)
		}
		m := r.Members[i]
		if input && m.ReadOnly {
			return nil, fmt.Errorf("wire: input type %s holds the read-only member %s", typ, name)
		}
		if i < last {
			return nil, fmt.Errorf("wire: %s.%s comes out of the declared order of %s", typ, f.Name, r.Name)
		}
		last = i
		if err := checkFieldType(m, f.Type, input); err != nil {
			return nil, fmt.Errorf("wire: %s.%s: %w", typ, f.Name, err)
		}
		b.field[i] = f.Index
		if m.Kind == KindRecords {
			item, err := bind(m.Item, f.Type.Elem(), input)
			if err != nil {
				return nil, err
			}
			b.item[i] = item
		}
	}
	for i, m := range r.Members {
		if b.field[i] == nil && (!input || !m.ReadOnly) {
			return nil, fmt.Errorf("wire: %s lacks the member %s of %s", typ, m.JSON, r.Name)
		}
	}
	return b, nil
}

// checkFieldType says whether the codecs can keep a member of m's kind in a
// field of type t: input types keep the text as sent, so that a bad GUID or
// date is reported with its member's name; view types keep typed values.
func checkFieldType(m Member, t reflect.Type, input bool) error {
	ok := false
	switch {
	case m.Kind == KindRecords:
		ok = t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct && m.Item != nil
	case m.Kind == KindGUIDs:
		ok = input && t == reflect.SliceOf(typeString) || !input && t == reflect.SliceOf(typeUUID)
	case input:
		switch m.Kind {
		case KindText, KindToken:
			ok = t == typeString
		case KindBool:
			ok = t.Kind() == reflect.Bool || t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Bool
		case KindImportance:
			ok = t == typeRawMessage
		case KindVersion:
			ok = t == reflect.PointerTo(typeTS)
		}
	default:
		base := t
		if base.Kind() == reflect.Pointer {
			base = base.Elem()
		}
		switch m.Kind {
		case KindImportance, KindNumber:
			ok = t.Kind() == reflect.Int
		case KindBool:
			ok = t.Kind() == reflect.Bool
		case KindVersion:
			ok = t.Kind() == reflect.String
		default:
			ok = base.Kind() == reflect.String || base == typeUUID || base == typeTime
		}
	}
	if !ok {
		return fmt.Errorf("type %s can't hold a member of kind %d", t, m.Kind)
	}
	return nil
}

// mustBind is bind for the package's own declarations, which a test binds
// too: a mistake in them is a programming error found at start-up.
func mustBind[T any](r *Record, input bool) *binding {
	b, err := bind(r, reflect.TypeFor[T](), input)
	if err != nil {
		panic(err)
	}
	return b
}

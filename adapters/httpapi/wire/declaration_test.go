package wire

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sampleValue is a valid wire value of a member of kind k, as JSON, as the
// text of an XML element or form field, and as the child elements of a
// collection.
type sampleValue struct {
	json string
	text string
	xml  string
}

const (
	sampleGUID1 = "4d81cd73-e621-4f67-9a2b-dd1c79c17175"
	sampleGUID2 = "2c8ca046-7360-4646-b7a2-0db2116a8ddb"
)

func sampleFor(t *testing.T, m Member) sampleValue {
	t.Helper()
	switch m.Kind {
	case KindText:
		return sampleValue{json: `"sample ` + m.JSON + `"`, text: "sample " + m.JSON}
	case KindToken:
		return sampleValue{json: `"` + sampleGUID1 + `"`, text: sampleGUID1}
	case KindBool:
		return sampleValue{json: "true", text: "true"}
	case KindImportance:
		return sampleValue{json: `"High"`, text: "High"}
	case KindVersion:
		return sampleValue{json: `"QEA="`, text: "QEA="}
	case KindGUIDs:
		return sampleValue{json: `["` + sampleGUID1 + `","` + sampleGUID2 + `"]`,
			xml: `<d2p1:guid>` + sampleGUID1 + `</d2p1:guid><d2p1:guid>` + sampleGUID2 + `</d2p1:guid>`}
	}
	t.Fatalf("no sample for member %s of kind %d; add one for the new kind", m.JSON, m.Kind)
	return sampleValue{}
}

// recordSample is one item of a record collection with every writable
// member set, in each codec's spelling: a JSON object, an XML element and
// form fields under prefix.
func recordSample(t *testing.T, r *Record, prefix string) (jsonObject, xmlElement string, form url.Values) {
	t.Helper()
	var members []string
	form = url.Values{}
	xmlElement = "<" + r.Name + ">"
	for _, m := range r.Members {
		if m.ReadOnly {
			continue
		}
		s := sampleFor(t, m)
		members = append(members, strconv.Quote(m.JSON)+":"+s.json)
		xmlElement += "<" + m.DotNet + ">" + s.text + "</" + m.DotNet + ">"
		form.Set(prefix+"["+m.JSON+"]", s.text)
	}
	return "{" + strings.Join(members, ",") + "}", xmlElement + "</" + r.Name + ">", form
}

// TestEveryDeclaredMemberReachesEveryCodec sends each writable member of
// the declaration, alone, as JSON, as XML and as a form under both of its
// names: the samples come from the declaration, so a member added there is
// covered here without further edits, and all three decoders must agree.
func TestEveryDeclaredMemberReachesEveryCodec(t *testing.T) {
	t.Parallel()
	record := composeRecord()
	for _, m := range record.Members {
		if m.ReadOnly {
			continue
		}
		t.Run(m.JSON, func(t *testing.T) {
			t.Parallel()
			var jsonValue, xmlContent string
			forms := []url.Values{{}, {}}
			if m.Kind == KindRecords {
				object, element, fields := recordSample(t, m.Item, m.JSON+"[0]")
				jsonValue, xmlContent = "["+object+"]", element
				for key, values := range fields {
					forms[0][key] = values
					forms[1][m.DotNet+strings.TrimPrefix(key, m.JSON)] = values
				}
			} else {
				s := sampleFor(t, m)
				jsonValue, xmlContent = s.json, s.text+s.xml
				if m.Kind == KindGUIDs {
					forms[0][m.JSON] = []string{sampleGUID1, sampleGUID2}
					forms[1][m.DotNet+"[0]"], forms[1][m.DotNet+"[1]"] = []string{sampleGUID1}, []string{sampleGUID2}
				} else {
					forms[0].Set(m.JSON, s.text)
					forms[1].Set(m.DotNet, s.text)
				}
			}
			fromJSON, err := DecodeJSON(strings.NewReader(`{`+strconv.Quote(m.JSON)+`:`+jsonValue+`}`), strictDecode)
			if err != nil {
				t.Fatalf("JSON: %v", err)
			}
			if reflect.ValueOf(fromJSON).FieldByIndex(compose.in.field[slices.Index(record.Members, m)]).IsZero() {
				t.Fatalf("JSON: %s did not arrive", m.JSON)
			}
			attrs := ""
			if m.Space != "" {
				attrs = ` xmlns="` + m.Space + `"`
			}
			if m.Kind == KindGUIDs {
				attrs += ` xmlns:d2p1="` + NamespaceArrays + `"`
			}
			doc := `<MessageComposeModel xmlns:i="` + NamespaceXSI + `" xmlns="` + NamespaceModels + `"><` + m.DotNet + attrs + `>` + xmlContent + `</` + m.DotNet + `></MessageComposeModel>`
			fromXML, err := DecodeXML(strings.NewReader(doc), strictDecode)
			if err != nil {
				t.Fatalf("XML %s: %v", doc, err)
			}
			fromJSON.Importance = normalizedImportance(t, fromJSON.Importance)
			fromXML.Importance = normalizedImportance(t, fromXML.Importance)
			requireSameModel(t, fromXML, fromJSON)
			for _, form := range forms {
				fromForm, err := DecodeForm(form, strictDecode)
				if err != nil {
					t.Fatalf("form %v: %v", form, err)
				}
				fromForm.Importance = normalizedImportance(t, fromForm.Importance)
				requireSameModel(t, fromForm, fromJSON)
			}
		})
	}
}

// normalizedImportance spells a decoded importance as JSON decoding keeps
// it, so that the three codecs can be compared: XML and forms keep the name
// as a JSON string too.
func normalizedImportance(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	if raw == nil {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return raw
	}
	return json.RawMessage(strconv.Quote(s))
}

// extendedModel and extendedView are the wire types with one member more,
// as a change to the model would add it.
type extendedModel struct {
	ComposeModel
	Priority string `json:"priority"`
}

type extendedView struct {
	MessageView
	Priority string `json:"priority"`
}

// TestExtraMemberNeedsOnlyItsDeclaration adds a member to the declaration
// and to the Go types, and nothing else: the XML and form codecs read it,
// the XML writer puts it in its DataContract place, the merge-patch base
// carries it, null removes it, and the OpenAPI schema lists it.
func TestExtraMemberNeedsOnlyItsDeclaration(t *testing.T) {
	t.Parallel()
	record := composeRecord()
	record.Members = append(record.Members, Member{JSON: "priority", DotNet: "Priority", Order: 2, Kind: KindText})
	in, err := bind(record, reflect.TypeFor[extendedModel](), true)
	if err != nil {
		t.Fatal(err)
	}
	view, err := bind(record, reflect.TypeFor[extendedView](), false)
	if err != nil {
		t.Fatal(err)
	}

	doc := `<MessageComposeModel xmlns:i="` + NamespaceXSI + `" xmlns="` + NamespaceModels + `"><Priority>urgent</Priority><Subject>s</Subject></MessageComposeModel>`
	if _, err := DecodeXML(strings.NewReader(doc), strictDecode); err == nil {
		t.Fatal("the declared model accepted Priority in strict mode; the test proves nothing")
	}
	var fromXML extendedModel
	if err := in.decodeXMLDocument(strings.NewReader(doc), strictDecode, reflect.ValueOf(&fromXML).Elem()); err != nil {
		t.Fatalf("XML: %v", err)
	}
	if fromXML.Priority != "urgent" || fromXML.Subject != "s" {
		t.Errorf("XML decoded %+v", fromXML)
	}

	for _, key := range []string{"priority", "Priority", "PRIORITY"} {
		var fromForm extendedModel
		if err := in.decodeForm(url.Values{key: {"urgent"}}, strictDecode, reflect.ValueOf(&fromForm).Elem()); err != nil {
			t.Fatalf("form %s: %v", key, err)
		}
		if fromForm.Priority != "urgent" {
			t.Errorf("form %s decoded %+v", key, fromForm)
		}
	}

	v := extendedView{MessageView: MessageView{Importance: 1}, Priority: "urgent"}
	var w XMLWriter
	if err := view.writeXML(&w, reflect.ValueOf(v), rootNamespaces); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(w.Bytes(), []byte(`<ParentId i:nil="true"/><Priority>urgent</Priority><References>`)) {
		t.Errorf("Priority is not between ParentId and References:\n%s", w.Bytes())
	}

	var base extendedModel
	copyMembers(in, view, reflect.ValueOf(&base).Elem(), reflect.ValueOf(v))
	if base.Priority != "urgent" {
		t.Errorf("the merge-patch base lacks priority: %+v", base)
	}
	if err := in.removeNullMembers(reflect.ValueOf(&base).Elem(), []byte(`{"priority": null}`)); err != nil || base.Priority != "" {
		t.Errorf("null left priority %q (%v)", base.Priority, err)
	}

	if !slices.ContainsFunc(record.SchemaProperties(false), func(p SchemaProperty) bool {
		return p.Name == "priority" && p.XMLName == "Priority"
	}) {
		t.Error("the schema properties lack priority")
	}
}

// TestBindRefusesTypesThatDisagree: a Go type that holds an undeclared
// member, lacks a declared one, holds a read-only one as input, or keeps a
// member in a type its codecs can't handle is refused.
func TestBindRefusesTypesThatDisagree(t *testing.T) {
	t.Parallel()
	record := &Record{Name: "R", Space: NamespaceModels, Members: []Member{
		{JSON: "a", DotNet: "A", Kind: KindText},
		{JSON: "b", DotNet: "B", Kind: KindBool},
		{JSON: "c", DotNet: "C", ReadOnly: true, Kind: KindText},
	}}
	type good struct {
		A string `json:"a"`
		B bool   `json:"b"`
	}
	type undeclared struct {
		A string `json:"a"`
		B bool   `json:"b"`
		D string `json:"d"`
	}
	type lacking struct {
		A string `json:"a"`
	}
	type readOnly struct {
		A string `json:"a"`
		B bool   `json:"b"`
		C string `json:"c"`
	}
	type wrongType struct {
		A int  `json:"a"`
		B bool `json:"b"`
	}
	type outOfOrder struct {
		B bool   `json:"b"`
		A string `json:"a"`
	}
	if _, err := bind(record, reflect.TypeFor[good](), true); err != nil {
		t.Fatalf("good: %v", err)
	}
	for name, typ := range map[string]reflect.Type{
		"undeclared": reflect.TypeFor[undeclared](), "lacking": reflect.TypeFor[lacking](),
		"readOnly": reflect.TypeFor[readOnly](), "wrongType": reflect.TypeFor[wrongType](),
		"outOfOrder": reflect.TypeFor[outOfOrder](),
	} {
		if _, err := bind(record, typ, true); err == nil {
			t.Errorf("%s: bound", name)
		}
	}
	if _, err := bind(record, reflect.TypeFor[good](), false); err == nil {
		t.Error("a view type without the read-only member bound")
	}
}

// TestEncodeXMLWritesEveryDeclaredMemberInOrder writes a message with every
// member set and requires each declared member once, in
// DataContractSerializer's order: by Order, then ordinally by name.
func TestEncodeXMLWritesEveryDeclaredMemberInOrder(t *testing.T) {
	t.Parallel()
	v := fullMessageView()
	at := v.CreatedDate.Add(time.Hour)
	v.SendAt, v.TextBody, v.DKIMResult = &at, "text", "pass"
	v.To[0].PossibleDuplicate = true
	out, err := EncodeXML(v)
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseXMLTree(bytes.NewReader(out), strictDecode)
	if err != nil {
		t.Fatal(err)
	}
	check := func(r *Record, n *xmlNode) {
		t.Helper()
		members := slices.Clone(r.Members)
		slices.SortStableFunc(members, func(a, b Member) int {
			return cmp.Or(cmp.Compare(a.Order, b.Order), strings.Compare(a.DotNet, b.DotNet))
		})
		var want, got []string
		for _, m := range members {
			want = append(want, m.DotNet)
		}
		for _, c := range n.children {
			got = append(got, c.name.Local)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s members:\ngot  %q\nwant %q", r.Name, got, want)
		}
	}
	record := composeRecord()
	check(record, root)
	for _, c := range root.children {
		if c.name.Local == "To" {
			check(record.Members[slices.IndexFunc(record.Members, func(m Member) bool { return m.DotNet == "To" })].Item, c.children[0])
		}
	}
}

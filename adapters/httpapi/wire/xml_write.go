package wire

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// xmlDateLayout is how .NET's DataContractSerializer writes a DateTime:
// seven fractional digits, then the offset.
const xmlDateLayout = "2006-01-02T15:04:05.0000000Z07:00"

// XMLDate spells t as DataContractSerializer writes a DateTime.
func XMLDate(t time.Time) string { return t.Format(xmlDateLayout) }

// rootNamespaces are the declarations on a document's root element.
const rootNamespaces = ` xmlns:i="` + NamespaceXSI + `" xmlns="` + NamespaceModels + `"`

// XMLWriter builds DataContract-style XML. Names are the caller's
// constants, so only text needs escaping.
type XMLWriter struct {
	buf bytes.Buffer
}

// Bytes is the document written so far.
func (w *XMLWriter) Bytes() []byte { return w.buf.Bytes() }

// Declaration writes the XML declaration.
func (w *XMLWriter) Declaration() { w.buf.WriteString(xml.Header) }

// OpenRoot opens a document's root element in the seed's models namespace,
// declaring the i prefix for i:nil.
func (w *XMLWriter) OpenRoot(tag string) { w.buf.WriteString("<" + tag + rootNamespaces + ">") }

// OpenIn opens an element that declares space as its default namespace.
func (w *XMLWriter) OpenIn(tag, space string) {
	w.buf.WriteString("<" + tag + ` xmlns="` + space + `">`)
}

// Open opens an element.
func (w *XMLWriter) Open(tag string) { w.buf.WriteString("<" + tag + ">") }

// Close closes an element.
func (w *XMLWriter) Close(tag string) { w.buf.WriteString("</" + tag + ">") }

// Value writes <name>s</name>.
func (w *XMLWriter) Value(name, s string) { w.value(name, "", s) }

// Message writes v as a MessageComposeModel element inside a list.
func (w *XMLWriter) Message(v MessageView) error {
	return compose.view.writeXML(w, reflect.ValueOf(&v).Elem(), "")
}

func (w *XMLWriter) text(s string) {
	// EscapeText only fails when the writer does; a bytes.Buffer does not.
	_ = xml.EscapeText(&w.buf, []byte(s))
}

// value writes <name attrs>text</name>; attrs is either empty or starts with a space.
func (w *XMLWriter) value(name, attrs, s string) {
	w.buf.WriteString("<" + name + attrs + ">")
	w.text(s)
	w.Close(name)
}

func (w *XMLWriter) nilValue(name, attrs string) {
	w.buf.WriteString("<" + name + attrs + ` i:nil="true"/>`)
}

// EncodeXML writes a message in the seed's DataContract shape, members in
// the order DataContractSerializer uses (see Member.Order), the gateway's
// read-only members in their alphabetical places.
func EncodeXML(v MessageView) ([]byte, error) {
	var w XMLWriter
	// An addressable value lets the writer read typed fields without copying them.
	if err := compose.view.writeXML(&w, reflect.ValueOf(&v).Elem(), rootNamespaces); err != nil {
		return nil, err
	}
	return w.Bytes(), nil
}

// writeXML writes v, a value of b's view type, as one element of b's
// record; attrs declares the namespaces when it is the root, "" otherwise.
func (b *binding) writeXML(w *XMLWriter, v reflect.Value, attrs string) error {
	w.buf.WriteString("<" + b.record.Name + attrs + ">")
	for _, i := range b.xmlOrder {
		if err := b.writeMember(w, i, v.FieldByIndex(b.field[i])); err != nil {
			return err
		}
	}
	w.Close(b.record.Name)
	return nil
}

// writeMember writes member i from its field f: an absent value is
// i:nil="true", or left out when the member is OmitEmpty.
func (b *binding) writeMember(w *XMLWriter, i int, f reflect.Value) error {
	m := b.record.Members[i]
	attrs := ""
	if space := b.record.space(m); space != b.record.Space {
		attrs = ` xmlns="` + space + `"`
	}
	switch {
	case f.Kind() == reflect.Pointer || f.Kind() == reflect.Slice:
		if f.IsNil() {
			if !m.OmitEmpty {
				w.nilValue(m.DotNet, attrs)
			}
			return nil
		}
	case m.OmitEmpty && f.IsZero():
		return nil
	case m.Kind == KindVersion && f.String() == "":
		w.nilValue(m.DotNet, attrs)
		return nil
	}
	if f.Kind() == reflect.Pointer {
		f = f.Elem()
	}
	switch m.Kind {
	case KindRecords:
		w.buf.WriteString("<" + m.DotNet + attrs + ">")
		for j := range f.Len() {
			if err := b.item[i].writeXML(w, f.Index(j), ""); err != nil {
				return err
			}
		}
		w.Close(m.DotNet)
	case KindGUIDs:
		w.buf.WriteString("<" + m.DotNet + attrs + ` xmlns:d2p1="` + NamespaceArrays + `">`)
		for _, id := range typedField[[]uuid.UUID](f) {
			w.value("d2p1:guid", "", id.String())
		}
		w.Close(m.DotNet)
	case KindImportance:
		importance := domain.Importance(f.Int())
		if !importance.Valid() {
			return fmt.Errorf("encode XML: %s has importance %d", b.record.Name, f.Int())
		}
		w.value(m.DotNet, attrs, importance.String())
	default:
		w.value(m.DotNet, attrs, xmlText(f))
	}
	return nil
}

// xmlText spells a simple view value as DataContractSerializer does.
func xmlText(f reflect.Value) string {
	switch f.Type() {
	case typeUUID:
		return typedField[uuid.UUID](f).String()
	case typeTime:
		return XMLDate(typedField[time.Time](f))
	}
	switch f.Kind() {
	case reflect.Int:
		return strconv.FormatInt(f.Int(), 10)
	case reflect.Bool:
		return strconv.FormatBool(f.Bool())
	}
	return f.String()
}

// typedField reads f as a T, through its address when it has one, which
// saves boxing a copy of the value.
func typedField[T any](f reflect.Value) T {
	if f.CanAddr() {
		return *f.Addr().Interface().(*T)
	}
	return f.Interface().(T)
}

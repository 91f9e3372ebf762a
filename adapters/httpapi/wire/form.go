package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/domain"
)

// maxFormIndex is the largest list index a form may use: 100 items, the
// domain's recipient cap.
const maxFormIndex = 99

// formMember finds a writable member of b as a form names it: by its JSON
// name or by its .NET property name, in any case.
func (b *binding) formMember(name string) (int, bool) {
	for i, m := range b.record.Members {
		if !m.ReadOnly && (strings.EqualFold(name, m.JSON) || strings.EqualFold(name, m.DotNet)) {
			return i, true
		}
	}
	return -1, false
}

// formKey is a parsed form key. index is -1 for a key without one
// ("attachments", "attachments[]"); item is the member of a record list's
// element, -1 otherwise.
type formKey struct {
	member Member
	index  int
	item   Member
}

// path is the key's canonical wire spelling, used in errors.
func (k formKey) path() string {
	p := k.member.JSON
	if k.index >= 0 {
		p += "[" + strconv.Itoa(k.index) + "]"
	}
	if k.item.JSON != "" {
		p += "." + k.item.JSON
	}
	return p
}

// parseFormKey understands the ASP.NET and jQuery spellings: "subject",
// "To[0].EmailAddress", "to[0][email_address]", "attachments[0]",
// "attachments[]" and "attachments".
func (b *binding) parseFormKey(key string) (formKey, int, error) {
	name, rest := key, ""
	if i := strings.IndexAny(key, "[."); i >= 0 {
		name, rest = key[:i], key[i:]
	}
	i, ok := b.formMember(name)
	if !ok {
		return formKey{}, -1, newUnknownFormKey(formKeyWire(key), memberName(name), serverOwned, b.record.Name)
	}
	member := b.record.Members[i]
	k := formKey{member: member, index: -1}
	malformed := func(want string) error {
		return domain.FieldError(formKeyWire(key), "is not a valid key; write %s", want)
	}
	switch member.Kind {
	case KindRecords:
	case KindGUIDs:
		switch {
		case rest == "" || rest == "[]":
			return k, i, nil
		case strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]"):
			index, err := parseFormIndex(member.JSON, rest[1:len(rest)-1])
			if err != nil {
				return formKey{}, -1, err
			}
			if index < 0 {
				return formKey{}, -1, malformed(member.JSON + "[0]")
			}
			k.index = index
			return k, i, nil
		}
		return formKey{}, -1, malformed(member.JSON + "[0]")
	default:
		if rest != "" {
			return formKey{}, -1, malformed(member.JSON)
		}
		return k, i, nil
	}
	// A record list: to[i].member or to[i][member].
	want := member.JSON + "[0].email_address or " + member.JSON + "[0][email_address]"
	end := strings.IndexByte(rest, ']')
	if !strings.HasPrefix(rest, "[") || end < 0 {
		return formKey{}, -1, malformed(want)
	}
	index, err := parseFormIndex(member.JSON, rest[1:end])
	if err != nil {
		return formKey{}, -1, err
	}
	var sub string
	switch after := rest[end+1:]; {
	case strings.HasPrefix(after, "."):
		sub = after[1:]
	case strings.HasPrefix(after, "[") && strings.HasSuffix(after, "]"):
		sub = after[1 : len(after)-1]
	}
	if index < 0 || sub == "" || strings.ContainsAny(sub, "[].") {
		return formKey{}, -1, malformed(want)
	}
	item := b.item[i]
	j, ok := item.formMember(sub)
	if !ok {
		return formKey{}, -1, newUnknownFormKey(member.JSON+"["+strconv.Itoa(index)+"]."+snakeCase(sub), memberName(sub), serverOwnedRecipient, item.record.Name)
	}
	k.index, k.item = index, item.record.Members[j]
	return k, i, nil
}

// unknownFormKey is a key naming no member of the model: skipped unless
// strict, but always refused when it names a server-owned member.
type unknownFormKey struct {
	err         *domain.Error
	serverOwned bool
}

func (e *unknownFormKey) Error() string { return e.err.Error() }
func (e *unknownFormKey) Unwrap() error { return e.err }

func newUnknownFormKey(path, name string, owned map[string]bool, typeName string) error {
	if owned[name] {
		return &unknownFormKey{err: domain.FieldError(path, "is set by the gateway and can't be assigned"), serverOwned: true}
	}
	return &unknownFormKey{err: domain.FieldError(path, "is not a field of %s", typeName)}
}

// checkboxValues reads MVC's checkbox pair: Html.CheckBoxFor posts "true"
// and a hidden "false" for a ticked box, "false" alone otherwise, and MVC
// binds the first. Other repeated values are kept for the usual check.
func checkboxValues(k formKey, values []string) []string {
	if k.member.Kind == KindBool && len(values) == 2 &&
		strings.EqualFold(strings.TrimSpace(values[0]), "true") && strings.EqualFold(strings.TrimSpace(values[1]), "false") {
		return values[:1]
	}
	return values
}

// parseFormIndex reads the digits between brackets. It returns -1 for
// anything that is not a plain decimal index, so the caller can report the
// key; an index past the limit is reported against the list.
func parseFormIndex(list, s string) (int, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" || len(s) > 1 && s[0] == '0' {
		return -1, nil
	}
	if len(s) > 2 {
		return -1, domain.FieldError(list, "may hold at most %d items (indexes 0 to %d)", maxFormIndex+1, maxFormIndex)
	}
	n, _ := strconv.Atoi(s) // at most two digits, so it parses
	return n, nil
}

// formKeyWire spells an unrecognised key in snake_case for an error message.
func formKeyWire(key string) string {
	return truncateForError(snakeCase(key))
}

// formValues gathers values by canonical path, refusing two different values
// for the same path even when they arrive under differently spelled keys.
type formValues map[string]string

func (fv formValues) set(path, value string) error {
	if old, ok := fv[path]; ok && old != value {
		return domain.FieldError(path, "is given more than once with different values")
	}
	fv[path] = value
	return nil
}

// formGUIDValues gathers one GUID list member: either indexed keys or
// values under one unindexed key.
type formGUIDValues struct {
	indexed   map[int]string
	appended  []string
	appendKey string
}

// DecodeForm reads a compose model from an x-www-form-urlencoded (or
// multipart) form, following ASP.NET model binding: names match either the
// JSON or the .NET spelling, in any case, and lists are indexed from 0
// without gaps.
func DecodeForm(values url.Values, opts Options) (ComposeModel, error) {
	var m ComposeModel
	err := compose.in.decodeForm(values, opts, reflect.ValueOf(&m).Elem())
	return m, err
}

// decodeForm reads values into dst, a value of b's input type.
func (b *binding) decodeForm(values url.Values, opts Options, dst reflect.Value) error {
	scalars := formValues{}
	records := map[int]map[int]formValues{}
	guids := map[int]*formGUIDValues{}
	// Sorted keys make the first error reported the same on every run.
	for _, key := range slices.Sorted(maps.Keys(values)) {
		k, i, err := b.parseFormKey(key)
		var unknown *unknownFormKey
		if errors.As(err, &unknown) && !opts.Strict && !unknown.serverOwned {
			continue // as MVC model binding ignores keys the model lacks
		}
		if err != nil {
			return err
		}
		for _, value := range checkboxValues(k, values[key]) {
			switch k.member.Kind {
			case KindRecords:
				list := records[i]
				if list == nil {
					list = map[int]formValues{}
					records[i] = list
				}
				if list[k.index] == nil {
					list[k.index] = formValues{}
				}
				if err = list[k.index].set(k.item.JSON, value); err != nil {
					err = domain.FieldError(k.path(), "is given more than once with different values")
				}
			case KindGUIDs:
				g := guids[i]
				if g == nil {
					g = &formGUIDValues{indexed: map[int]string{}}
					guids[i] = g
				}
				err = g.add(k, key, value)
			default:
				err = scalars.set(k.member.JSON, value)
			}
			if err != nil {
				return err
			}
		}
	}
	if err := b.setFormScalars(dst, scalars); err != nil {
		return err
	}
	for i, m := range b.record.Members {
		if m.Kind != KindGUIDs || m.ReadOnly {
			continue
		}
		var g formGUIDValues
		if guids[i] != nil {
			g = *guids[i]
		}
		list, err := g.list(m.JSON)
		if err != nil {
			return err
		}
		if list != nil {
			dst.FieldByIndex(b.field[i]).Set(reflect.ValueOf(list))
		}
	}
	for i, m := range b.record.Members {
		if m.Kind != KindRecords || m.ReadOnly {
			continue
		}
		list, err := b.item[i].formRecordList(m.JSON, records[i])
		if err != nil {
			return err
		}
		if list.IsValid() {
			dst.FieldByIndex(b.field[i]).Set(list)
		}
	}
	return nil
}

// add takes one value of a GUID list under key.
func (g *formGUIDValues) add(k formKey, key, value string) error {
	if k.index >= 0 {
		if old, ok := g.indexed[k.index]; ok && old != value {
			return domain.FieldError(k.path(), "is given more than once with different values")
		}
		g.indexed[k.index] = value
		return nil
	}
	// The order of values under one key is kept; across keys a map has
	// none, so only one unindexed key may be used.
	if g.appendKey != "" && g.appendKey != key {
		return domain.FieldError(k.member.JSON, "is given under both %q and %q; use one key", truncateForError(g.appendKey), truncateForError(key))
	}
	g.appendKey = key
	g.appended = append(g.appended, value)
	return nil
}

// list builds the GUID list named wire from either indexed or unindexed keys, never both.
func (g formGUIDValues) list(wire string) ([]string, error) {
	switch {
	case len(g.indexed) > 0 && len(g.appended) > 0:
		return nil, domain.FieldError(wire, "mixes indexed (%s[0]) and unindexed (%s, %s[]) keys", wire, wire, wire)
	case len(g.appended) > maxFormIndex+1:
		return nil, domain.FieldError(wire, "may hold at most %d items", maxFormIndex+1)
	case len(g.appended) > 0:
		return g.appended, nil
	case len(g.indexed) == 0:
		return nil, nil
	}
	list := make([]string, len(g.indexed))
	for i := range list {
		v, ok := g.indexed[i]
		if !ok {
			return nil, domain.FieldError(wire, "indexes must run from 0 without gaps; %s[%d] is missing", wire, i)
		}
		list[i] = v
	}
	return list, nil
}

// formRecordList builds the list named wire of b's records from its
// indexed items; the zero Value when the form has none.
func (b *binding) formRecordList(wire string, items map[int]formValues) (reflect.Value, error) {
	if len(items) == 0 {
		return reflect.Value{}, nil
	}
	list := reflect.MakeSlice(reflect.SliceOf(b.typ), len(items), len(items))
	for i := range len(items) {
		fields, ok := items[i]
		if !ok {
			return reflect.Value{}, domain.FieldError(wire, "indexes must run from 0 without gaps; %s[%d] is missing", wire, i)
		}
		if err := b.setFormScalars(list.Index(i), fields); err != nil {
			return reflect.Value{}, err
		}
	}
	return list, nil
}

// setFormScalars sets dst's simple members, in the declared order so the
// first error reported is always the same.
func (b *binding) setFormScalars(dst reflect.Value, scalars formValues) error {
	for i, m := range b.record.Members {
		value, ok := scalars[m.JSON]
		if !ok || m.ReadOnly || m.Kind == KindRecords || m.Kind == KindGUIDs {
			continue
		}
		if err := setFormScalar(dst.FieldByIndex(b.field[i]), m, value); err != nil {
			return err
		}
	}
	return nil
}

// setFormScalar sets the field f of member m from a form value, as m's kind
// is spelled in forms.
func setFormScalar(f reflect.Value, m Member, value string) error {
	switch m.Kind {
	case KindText, KindToken:
		f.SetString(value)
	case KindImportance:
		if _, err := domain.ParseImportance(value); err != nil {
			return err
		}
		raw, err := json.Marshal(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("quote importance: %w", err)
		}
		f.SetBytes(raw)
	case KindBool:
		if f.Kind() == reflect.Pointer && strings.TrimSpace(value) == "" {
			return nil // a nullable bool: empty means absent, as in ASP.NET binding
		}
		v, ok := parseFormBool(value)
		if !ok {
			return domain.FieldError(m.JSON, "must be true or false (or on, 1, 0), not %q", truncateForError(value))
		}
		setBool(f, v)
	case KindVersion:
		// Query decoding turns an unescaped '+' into a space; base64 has no spaces.
		if s := strings.ReplaceAll(strings.TrimSpace(value), " ", "+"); s != "" {
			ts := TS(s)
			f.Set(reflect.ValueOf(&ts))
		}
	default:
		return fmt.Errorf("decode form: no reader for member %s of kind %d", m.JSON, m.Kind)
	}
	return nil
}

func parseFormBool(s string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "on", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return false, false
}

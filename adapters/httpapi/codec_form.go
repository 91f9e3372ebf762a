package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/domain"
)

// maxFormIndex is the largest list index a form may use: 100 items, the
// domain's recipient cap.
const maxFormIndex = 99

type formKind int

const (
	formScalar formKind = iota
	formRecipients
	formGUIDs
)

// formField is one member of MessageComposeModel as a form names it: by its
// JSON wire name or by its .NET property name, in any case.
type formField struct {
	wire   string
	pascal string
	kind   formKind
}

var composeFormFields = []formField{
	{"sender_email", "SenderEmail", formScalar},
	{"sender_display_name", "SenderDisplayName", formScalar},
	{"sender_account_id", "SenderAccountId", formScalar},
	{"to", "To", formRecipients},
	{"cc", "Cc", formRecipients},
	{"bcc", "Bcc", formRecipients},
	{"importance", "Importance", formScalar},
	{"message_id", "MessageId", formScalar},
	{"references", "References", formScalar},
	{"body", "Body", formScalar},
	{"attachments", "Attachments", formGUIDs},
	{"parent_id", "ParentId", formScalar},
	{"created_date", "CreatedDate", formScalar},
	{"send", "Send", formScalar},
	{"send_at", "SendAt", formScalar},
	{"subject", "Subject", formScalar},
	{"can_delete", "CanDelete", formScalar},
	{"id", "Id", formScalar},
	{"subscription_id", "SubscriptionId", formScalar},
	{"ts", "Ts", formScalar},
}

var recipientFormFields = []formField{
	{"display_name", "DisplayName", formScalar},
	{"email_address", "EmailAddress", formScalar},
	{"account_id", "AccountId", formScalar},
}

func lookupFormField(fields []formField, name string) (formField, bool) {
	for _, f := range fields {
		if strings.EqualFold(name, f.wire) || strings.EqualFold(name, f.pascal) {
			return f, true
		}
	}
	return formField{}, false
}

// formKey is a parsed form key. index is -1 for a key without one
// ("attachments", "attachments[]"); member is set for recipient keys.
type formKey struct {
	field  formField
	index  int
	member string
}

// path is the key's canonical wire spelling, used in errors.
func (k formKey) path() string {
	p := k.field.wire
	if k.index >= 0 {
		p += "[" + strconv.Itoa(k.index) + "]"
	}
	if k.member != "" {
		p += "." + k.member
	}
	return p
}

// parseFormKey understands the ASP.NET and jQuery spellings: "subject",
// "To[0].EmailAddress", "to[0][email_address]", "attachments[0]",
// "attachments[]" and "attachments".
func parseFormKey(key string) (formKey, error) {
	name, rest := key, ""
	if i := strings.IndexAny(key, "[."); i >= 0 {
		name, rest = key[:i], key[i:]
	}
	field, ok := lookupFormField(composeFormFields, name)
	if !ok {
		return formKey{}, newUnknownFormKey(formKeyWire(key), memberName(name), serverOwned, "MessageComposeModel")
	}
	k := formKey{field: field, index: -1}
	malformed := func(want string) error {
		return domain.FieldError(formKeyWire(key), "is not a valid key; write %s", want)
	}
	switch field.kind {
	case formScalar:
		if rest != "" {
			return formKey{}, malformed(field.wire)
		}
		return k, nil
	case formGUIDs:
		switch {
		case rest == "" || rest == "[]":
			return k, nil
		case strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]"):
			index, err := parseFormIndex(field.wire, rest[1:len(rest)-1])
			if err != nil {
				return formKey{}, err
			}
			if index < 0 {
				return formKey{}, malformed(field.wire + "[0]")
			}
			k.index = index
			return k, nil
		}
		return formKey{}, malformed(field.wire + "[0]")
	}
	// A recipient: to[i].member or to[i][member].
	want := field.wire + "[0].email_address or " + field.wire + "[0][email_address]"
	end := strings.IndexByte(rest, ']')
	if !strings.HasPrefix(rest, "[") || end < 0 {
		return formKey{}, malformed(want)
	}
	index, err := parseFormIndex(field.wire, rest[1:end])
	if err != nil {
		return formKey{}, err
	}
	var member string
	switch after := rest[end+1:]; {
	case strings.HasPrefix(after, "."):
		member = after[1:]
	case strings.HasPrefix(after, "[") && strings.HasSuffix(after, "]"):
		member = after[1 : len(after)-1]
	}
	if index < 0 || member == "" || strings.ContainsAny(member, "[].") {
		return formKey{}, malformed(want)
	}
	sub, ok := lookupFormField(recipientFormFields, member)
	if !ok {
		return formKey{}, newUnknownFormKey(field.wire+"["+strconv.Itoa(index)+"]."+snakeCase(member), memberName(member), serverOwnedRecipient, "MessageRecipientModel")
	}
	k.index, k.member = index, sub.wire
	return k, nil
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
	if (k.field.wire == "send" || k.field.wire == "can_delete") && len(values) == 2 &&
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

// decodeForm reads a compose model from an x-www-form-urlencoded (or
// multipart) form, following ASP.NET model binding: names match either the
// JSON or the .NET spelling, in any case, and lists are indexed from 0
// without gaps.
func decodeForm(values url.Values, opts decodeOptions) (composeModel, error) {
	var m composeModel
	scalars := formValues{}
	recipients := map[string]map[int]formValues{}
	indexedGUIDs := map[int]string{}
	var (
		appendedGUIDs []string
		appendKey     string
	)
	// Sorted keys make the first error reported the same on every run.
	for _, key := range slices.Sorted(maps.Keys(values)) {
		k, err := parseFormKey(key)
		var unknown *unknownFormKey
		if errors.As(err, &unknown) && !opts.strict && !unknown.serverOwned {
			continue // as MVC model binding ignores keys the model lacks
		}
		if err != nil {
			return m, err
		}
		for _, value := range checkboxValues(k, values[key]) {
			switch {
			case k.field.kind == formScalar:
				err = scalars.set(k.field.wire, value)
			case k.field.kind == formRecipients:
				list := recipients[k.field.wire]
				if list == nil {
					list = map[int]formValues{}
					recipients[k.field.wire] = list
				}
				if list[k.index] == nil {
					list[k.index] = formValues{}
				}
				if err = list[k.index].set(k.member, value); err != nil {
					err = domain.FieldError(k.path(), "is given more than once with different values")
				}
			case k.index >= 0:
				if old, ok := indexedGUIDs[k.index]; ok && old != value {
					err = domain.FieldError(k.path(), "is given more than once with different values")
				}
				indexedGUIDs[k.index] = value
			default:
				// The order of values under one key is kept; across keys a
				// map has none, so only one unindexed key may be used.
				if appendKey != "" && appendKey != key {
					err = domain.FieldError(k.field.wire, "is given under both %q and %q; use one key", truncateForError(appendKey), truncateForError(key))
					break
				}
				appendKey = key
				appendedGUIDs = append(appendedGUIDs, value)
			}
			if err != nil {
				return m, err
			}
		}
	}
	if err := setFormScalars(&m, scalars); err != nil {
		return m, err
	}
	var err error
	if m.Attachments, err = formGUIDList(indexedGUIDs, appendedGUIDs); err != nil {
		return m, err
	}
	for _, list := range []struct {
		wire string
		dst  *[]recipientModel
	}{{"to", &m.To}, {"cc", &m.Cc}, {"bcc", &m.Bcc}} {
		if *list.dst, err = formRecipientList(list.wire, recipients[list.wire]); err != nil {
			return m, err
		}
	}
	return m, nil
}

// setFormScalars sets m's simple members, in the model's order so the first
// error reported is always the same.
func setFormScalars(m *composeModel, scalars formValues) error {
	for _, f := range composeFormFields {
		wire := f.wire
		value, ok := scalars[wire]
		if !ok || f.kind != formScalar {
			continue
		}
		switch wire {
		case "sender_email":
			m.SenderEmail = value
		case "sender_display_name":
			m.SenderDisplayName = value
		case "sender_account_id":
			m.SenderAccountID = value
		case "importance":
			if _, err := domain.ParseImportance(value); err != nil {
				return err
			}
			raw, err := json.Marshal(strings.TrimSpace(value))
			if err != nil {
				return fmt.Errorf("quote importance: %w", err)
			}
			m.Importance = raw
		case "message_id":
			m.MessageID = value
		case "references":
			m.References = value
		case "body":
			m.Body = value
		case "parent_id":
			m.ParentID = value
		case "created_date":
			m.CreatedDate = value
		case "send":
			b, ok := parseFormBool(value)
			if !ok {
				return domain.FieldError(wire, "must be true or false (or on, 1, 0), not %q", truncateForError(value))
			}
			m.Send = b
		case "send_at":
			m.SendAt = value
		case "subject":
			m.Subject = value
		case "can_delete":
			// A nullable bool: empty means absent, as in ASP.NET binding.
			if strings.TrimSpace(value) == "" {
				continue
			}
			b, ok := parseFormBool(value)
			if !ok {
				return domain.FieldError(wire, "must be true or false (or on, 1, 0), not %q", truncateForError(value))
			}
			m.CanDelete = &b
		case "id":
			m.ID = value
		case "subscription_id":
			m.SubscriptionID = value
		case "ts":
			// Query decoding turns an unescaped '+' into a space; base64 has no spaces.
			ts := strings.ReplaceAll(strings.TrimSpace(value), " ", "+")
			if ts != "" {
				wts := wireTS(ts)
				m.TS = &wts
			}
		default:
			return fmt.Errorf("decode form: no setter for %s", wire)
		}
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

// formGUIDList builds attachments from either indexed or unindexed keys, never both.
func formGUIDList(indexed map[int]string, appended []string) ([]string, error) {
	switch {
	case len(indexed) > 0 && len(appended) > 0:
		return nil, domain.FieldError("attachments", "mixes indexed (attachments[0]) and unindexed (attachments, attachments[]) keys")
	case len(appended) > maxFormIndex+1:
		return nil, domain.FieldError("attachments", "may hold at most %d items", maxFormIndex+1)
	case len(appended) > 0:
		return appended, nil
	case len(indexed) == 0:
		return nil, nil
	}
	list := make([]string, len(indexed))
	for i := range list {
		v, ok := indexed[i]
		if !ok {
			return nil, domain.FieldError("attachments", "indexes must run from 0 without gaps; attachments[%d] is missing", i)
		}
		list[i] = v
	}
	return list, nil
}

func formRecipientList(wire string, items map[int]formValues) ([]recipientModel, error) {
	if len(items) == 0 {
		return nil, nil
	}
	list := make([]recipientModel, len(items))
	for i := range list {
		fields, ok := items[i]
		if !ok {
			return nil, domain.FieldError(wire, "indexes must run from 0 without gaps; %s[%d] is missing", wire, i)
		}
		list[i] = recipientModel{
			DisplayName:  fields["display_name"],
			EmailAddress: fields["email_address"],
			AccountID:    fields["account_id"],
		}
	}
	return list, nil
}

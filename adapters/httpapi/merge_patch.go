package httpapi

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"

	"github.com/mailgate/mailgate/domain"
)

// removeNullMembers applies RFC 7396's rule that null removes a member:
// encoding/json leaves a string or bool untouched on null (it clears only
// pointers, slices and maps), so "subject": null would otherwise keep the
// old subject. Member names match as encoding/json matches them, ignoring case.
func removeNullMembers(model *composeModel, patch []byte) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(patch, &members); err != nil {
		return domain.FieldError("", "a merge patch must be a JSON object")
	}
	v := reflect.ValueOf(model).Elem()
	t := v.Type()
	for key, raw := range members {
		if !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			continue
		}
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if strings.EqualFold(name, key) {
				v.Field(i).SetZero()
			}
		}
	}
	return nil
}

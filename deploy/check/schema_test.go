package check

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestSchemaIsSelfContained: draft 2020-12, and no $ref that Helm would
// fetch over the network.
func TestSchemaIsSelfContained(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(readFile(t, filepath.Join(chartDir, "values.schema.json")), &schema); err != nil {
		t.Fatal(err)
	}
	if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v, want draft 2020-12", schema["$schema"])
	}
	if schema["additionalProperties"] != false {
		t.Error("the top level must refuse unknown keys")
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if k == "$ref" {
					if s, _ := c.(string); !strings.HasPrefix(s, "#/") {
						t.Errorf("%s: $ref %v is not local", path, c)
					}
				}
				walk(path+"/"+k, c)
			}
		case []any:
			for _, c := range v {
				walk(path+"[]", c)
			}
		}
	}
	walk("", schema)
}

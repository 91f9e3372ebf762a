package httpapi

import "testing"

// A text upload keeps the parameters that say how to read it; anything else
// the client declared is dropped.
func TestAttachmentContentTypeKeepsSafeParameters(t *testing.T) {
	t.Parallel()
	text := []byte("Grüße\n")
	tests := []struct {
		name, declared string
		data           []byte
		want           string
	}{
		{"DeclaredCharsetKept", "text/plain; charset=utf-8", text, "text/plain; charset=utf-8"},
		{"OtherCharsetKept", "text/plain; charset=ISO-8859-1", []byte("caf\xe9\n"), "text/plain; charset=iso-8859-1"},
		{"FlowedKept", "text/plain; charset=utf-8; format=flowed; delsp=yes", text, "text/plain; charset=utf-8; delsp=yes; format=flowed"},
		{"SniffedCharsetWhenNoneDeclared", "text/markdown", []byte("# Notes\n"), "text/markdown; charset=utf-8"},
		{"UnsafeParametersDropped", `text/plain; charset=utf-8; name="x.exe"; boundary=zz`, text, "text/plain; charset=utf-8"},
		{"BadCharsetDropped", `text/plain; charset="utf-8\"; x"`, text, "text/plain; charset=utf-8"},
		{"BytesWinOverLabel", "text/plain; charset=utf-8", []byte("%PDF-1.4\n"), "application/pdf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := contentType(tt.data, tt.declared); got != tt.want {
				t.Fatalf("contentType(%q) = %q, want %q", tt.declared, got, tt.want)
			}
		})
	}
}

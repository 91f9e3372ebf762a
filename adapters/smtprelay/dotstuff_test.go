package smtprelay

import (
	"bufio"
	"bytes"
	"net/textproto"
	"testing"
)

// textprotoDotted is what net/textproto's DotWriter makes of data.
func textprotoDotted(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	dw := textproto.NewWriter(w).DotWriter()
	if _, err := dw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := dw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var dotStuffCases = []string{
	"", "a", ".", "..", "\r\n", "\n", "\r", ".\r\n", "a\r\n.\r\nb", "a\n.b\n..c", "x\r\n.\r", "line\r\n", "\r\n.\r\n",
	"Subject: hi\r\n\r\n.leading dot\r\nmid.dle\r\n.\r\n", "no final break", "\n\n.\n",
	"a\r\n.b\r\n..c", ".x\r\n.\r", "crlf only\r\n.\r\n.\r\n",
}

func TestDotStuffedWritesWhatTextprotoWrites(t *testing.T) {
	for _, in := range dotStuffCases {
		if got, want := dotStuffed([]byte(in)), textprotoDotted(t, []byte(in)); !bytes.Equal(got, want) {
			t.Errorf("dotStuffed(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzDotStuffed(f *testing.F) {
	for _, in := range dotStuffCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// The copy from dot to dot and the line-at-a-time rule agree on
		// everything, bare CRs included.
		if got, want := dotStuffed(in), dotStuffedByLine(nil, in); !bytes.Equal(got, want) {
			t.Fatalf("dotStuffed(%q) = %q, line at a time %q", in, got, want)
		}
		if !bareCRFree(in) {
			t.Skip("a bare CR, which DotWriter treats in its own way and mailbuild never writes")
		}
		if got, want := dotStuffed(in), textprotoDotted(t, in); !bytes.Equal(got, want) {
			t.Errorf("dotStuffed(%q) = %q, want %q", in, got, want)
		}
	})
}

// bareCRFree reports whether every CR of in, but a final one, starts a CRLF.
func bareCRFree(in []byte) bool {
	for i, c := range in[:max(len(in)-1, 0)] {
		if c == '\r' && in[i+1] != '\n' {
			return false
		}
	}
	return true
}

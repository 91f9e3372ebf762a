package domain_test

import (
	"bytes"
	"math"
	"strconv"
	"testing"

	"github.com/mailgate/mailgate/domain"
)

func TestVersionRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v         domain.Version
		wantBytes []byte
		wantStr   string
	}{
		{0, []byte{0, 0, 0, 0, 0, 0, 0, 0}, "AAAAAAAAAAA="},
		{1, []byte{0, 0, 0, 0, 0, 0, 0, 1}, "AAAAAAAAAAE="},
		{0x0102030405060708, []byte{1, 2, 3, 4, 5, 6, 7, 8}, "AQIDBAUGBwg="},
		{math.MaxInt64, []byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "f/////////8="},
		{-1, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "//////////8="},
		{math.MinInt64, []byte{0x80, 0, 0, 0, 0, 0, 0, 0}, "gAAAAAAAAAA="},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatInt(int64(tt.v), 10), func(t *testing.T) {
			t.Parallel()
			if got := tt.v.Bytes(); !bytes.Equal(got, tt.wantBytes) {
				t.Fatalf("Bytes() = %x, want %x", got, tt.wantBytes)
			}
			if got := tt.v.String(); got != tt.wantStr {
				t.Fatalf("String() = %q, want %q", got, tt.wantStr)
			}
			fromBytes, err := domain.VersionFromBytes(tt.v.Bytes())
			if err != nil || fromBytes != tt.v {
				t.Fatalf("VersionFromBytes(Bytes()) = %v, %v; want %v", fromBytes, err, tt.v)
			}
			parsed, err := domain.ParseVersion(tt.v.String())
			if err != nil || parsed != tt.v {
				t.Fatalf("ParseVersion(String()) = %v, %v; want %v", parsed, err, tt.v)
			}
		})
	}
}

func TestVersionFromBytesErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
	}{
		{"Nil", nil},
		{"Empty", []byte{}},
		{"Seven", make([]byte, 7)},
		{"Nine", make([]byte, 9)},
		{"Sixteen", make([]byte, 16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := domain.VersionFromBytes(tt.in)
			requireError(t, err, domain.CodeInvalid, "ts")
		})
	}
}

func TestParseVersionErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
	}{
		{"Empty", ""},
		{"NotBase64", "not base64!"},
		{"MissingPadding", "AAAAAAAAAAE"},
		{"URLAlphabet", "__________8="},
		{"SevenBytes", "AAAAAAAAAA=="},
		{"NineBytes", "AAAAAAAAAAAA"},
		{"Quoted", `"AAAAAAAAAAE="`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := domain.ParseVersion(tt.in)
			requireError(t, err, domain.CodeInvalid, "ts")
		})
	}
}

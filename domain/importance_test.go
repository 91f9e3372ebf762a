package domain_test

import (
	"testing"

	"github.com/mailgate/mailgate/domain"
)

func TestParseImportance(t *testing.T) {
	t.Parallel()
	ok := []struct {
		in   string
		want domain.Importance
	}{
		{"Low", domain.ImportanceLow},
		{"low", domain.ImportanceLow},
		{"LOW", domain.ImportanceLow},
		{"Normal", domain.ImportanceNormal},
		{"nOrMaL", domain.ImportanceNormal},
		{"High", domain.ImportanceHigh},
		{"high", domain.ImportanceHigh},
		{" High\t", domain.ImportanceHigh},
		{"0", domain.ImportanceLow},
		{"1", domain.ImportanceNormal},
		{"2", domain.ImportanceHigh},
		{" 2 ", domain.ImportanceHigh},
	}
	for _, tt := range ok {
		t.Run("OK/"+tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseImportance(tt.in)
			if err != nil {
				t.Fatalf("ParseImportance(%q) error: %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseImportance(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	bad := []string{"", " ", "3", "-1", "10", "Urgent", "Lowest", "1.0", "0x1", "Hi gh", "9223372036854775808"}
	for _, in := range bad {
		t.Run("ErrInvalid/"+in, func(t *testing.T) {
			t.Parallel()
			_, err := domain.ParseImportance(in)
			requireError(t, err, domain.CodeInvalid, "importance")
		})
	}
}

func TestImportanceString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   domain.Importance
		want string
	}{
		{domain.ImportanceLow, "Low"},
		{domain.ImportanceNormal, "Normal"},
		{domain.ImportanceHigh, "High"},
		{3, "Importance(3)"},
		{-1, "Importance(-1)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			if got := tt.in.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestImportanceRoundTrip(t *testing.T) {
	t.Parallel()
	for _, i := range []domain.Importance{domain.ImportanceLow, domain.ImportanceNormal, domain.ImportanceHigh} {
		t.Run(i.String(), func(t *testing.T) {
			t.Parallel()
			if !i.Valid() {
				t.Fatalf("%v.Valid() = false", i)
			}
			got, err := domain.ParseImportance(i.String())
			if err != nil || got != i {
				t.Fatalf("ParseImportance(%q) = %v, %v; want %v", i.String(), got, err, i)
			}
		})
	}
	for _, i := range []domain.Importance{-1, 3, 100} {
		if i.Valid() {
			t.Errorf("Importance(%d).Valid() = true, want false", int(i))
		}
	}
}

package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// An account is authorised through its domain: once the domain is removed,
// the account is refused by address and by id, like a plain address on it.
func TestResolveSenderAfterDomainRemoved(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{})
	kept := "kept" + strings.ReplaceAll(uuid.NewString()[:8], "-", "") + ".example"
	if _, err := f.store.AddSenderDomain(ctx, f.tenant.ID, kept); err != nil {
		t.Fatal(err)
	}
	keptAccount, err := f.store.CreateAccount(ctx, f.tenant.ID, "stays@"+kept, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.RemoveSenderDomain(ctx, f.tenant.ID, f.domain); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name      string
		email     string
		accountID uuid.UUID
		wantField string
	}{
		{name: "ErrAccountByAddress", email: f.sender.Email, wantField: "sender_email"},
		{name: "ErrAccountByID", accountID: f.sender.ID, wantField: "sender_account_id"},
		{name: "ErrAccountByBoth", email: f.sender.Email, accountID: f.sender.ID, wantField: "sender_account_id"},
		{name: "ErrPlainAddress", email: "news@" + f.domain, wantField: "sender_email"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.store.ResolveSender(ctx, f.tenant.ID, tt.email, tt.accountID)
			var de *domain.Error
			if !errors.As(err, &de) || de.Code != domain.CodeForbidden || de.Field != tt.wantField {
				t.Fatalf("want forbidden on %s, got %v", tt.wantField, err)
			}
			if tt.name != "ErrPlainAddress" && !strings.Contains(de.Message, f.domain) {
				t.Errorf("message %q does not name the removed domain %s", de.Message, f.domain)
			}
		})
	}
	t.Run("OKAccountOnKeptDomain", func(t *testing.T) {
		got, err := f.store.ResolveSender(ctx, f.tenant.ID, "", keptAccount.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.AccountID != keptAccount.ID || got.Email != keptAccount.Email {
			t.Fatalf("got %+v", got)
		}
	})
}

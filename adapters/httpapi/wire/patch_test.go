package wire

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/domain"
)

// storedDraft is a draft with every member a client can set.
func storedDraft() *domain.Message {
	tenant := uuid.MustParse("a5913244-a8f5-459d-9406-72ddf3711f67")
	account := uuid.MustParse("c188454f-3ac6-495c-869a-e3d255f3326a")
	return &domain.Message{
		ID:                uuid.MustParse("67160834-f076-41da-862e-3a1c72281b0d"),
		SubscriptionID:    tenant,
		SenderEmail:       "sender@example.com",
		SenderDisplayName: "Sender",
		SenderAccountID:   account,
		Importance:        domain.ImportanceHigh,
		MessageID:         "<generated@example.com>",
		ClientMessageID:   "client ref",
		References:        "<a@example.com>",
		Subject:           "Hello",
		Body:              "text",
		State:             domain.StateDraft,
		Version:           3,
		CreatedDate:       time.Date(2026, 6, 9, 14, 59, 25, 902831600, time.UTC),
		SendAt:            time.Date(2026, 7, 1, 8, 0, 0, 0, time.UTC),
		Attachments:       []uuid.UUID{uuid.MustParse(sampleGUID1)},
		Recipients: []domain.Recipient{
			{Kind: domain.KindTo, DisplayName: "To", Email: "to@example.net", Status: domain.RecipientPending},
			{Kind: domain.KindCc, Email: "cc@example.net", AccountID: account},
			{Kind: domain.KindBcc, Email: "bcc@example.net"},
		},
	}
}

func TestPatchBaseCarriesEveryWritableMember(t *testing.T) {
	t.Parallel()
	m := storedDraft()
	got := PatchBase(m)
	canDelete := true
	want := ComposeModel{
		SenderEmail:       "sender@example.com",
		SenderDisplayName: "Sender",
		SenderAccountID:   "c188454f-3ac6-495c-869a-e3d255f3326a",
		To:                []RecipientModel{{DisplayName: "To", EmailAddress: "to@example.net"}},
		Cc:                []RecipientModel{{EmailAddress: "cc@example.net", AccountID: "c188454f-3ac6-495c-869a-e3d255f3326a"}},
		Bcc:               []RecipientModel{{EmailAddress: "bcc@example.net"}},
		Importance:        json.RawMessage("2"),
		MessageID:         "client ref",
		References:        "<a@example.com>",
		Body:              "text",
		Attachments:       []string{sampleGUID1},
		CreatedDate:       "2026-06-09T14:59:25.9028316Z",
		SendAt:            "2026-07-01T08:00:00Z",
		Subject:           "Hello",
		CanDelete:         &canDelete,
		ID:                "67160834-f076-41da-862e-3a1c72281b0d",
		SubscriptionID:    "a5913244-a8f5-459d-9406-72ddf3711f67",
	}
	requireSameModel(t, got, want)
	req, err := got.Request()
	if err != nil {
		t.Fatalf("the base does not convert: %v", err)
	}
	if req.TS != nil || req.SubscriptionID != m.SubscriptionID || !req.SendAt.Equal(m.SendAt) || req.Importance != m.Importance {
		t.Errorf("the base converts to %+v", req)
	}
}

func TestPatchBaseLeavesDerivedReferences(t *testing.T) {
	t.Parallel()
	m := storedDraft()
	m.ParentID = uuid.MustParse("48e91789-1800-4af1-9d0f-a545216ab490")
	if got := PatchBase(m).References; got != "" {
		t.Errorf("references derived from the parent were carried: %q", got)
	}
	m.ClientReferences = "<own@example.com>"
	if got := PatchBase(m).References; got != "<own@example.com>" {
		t.Errorf("the client's own references = %q", got)
	}
}

func TestApplyMergePatch(t *testing.T) {
	t.Parallel()
	base := PatchBase(storedDraft())
	if err := ApplyMergePatch(&base, []byte(`{"subject": null, "Body": "new", "cc": null}`), Options{}); err != nil {
		t.Fatal(err)
	}
	if base.Subject != "" || base.Body != "new" || base.Cc != nil || len(base.To) != 1 {
		t.Errorf("patched to %+v", base)
	}
	for _, patch := range []string{`{"state": "sent"}`, `{"to": [{"status": "delivered"}]}`, `[1]`} {
		base := PatchBase(storedDraft())
		err := ApplyMergePatch(&base, []byte(patch), Options{})
		requireCodecFieldError(t, err, map[string]string{`{"state": "sent"}`: "state", `{"to": [{"status": "delivered"}]}`: "to[0].status", `[1]`: ""}[patch])
	}
	base = PatchBase(storedDraft())
	requireCodecFieldError(t, ApplyMergePatch(&base, []byte(`{"colour": "red"}`), strictDecode), "colour")
}

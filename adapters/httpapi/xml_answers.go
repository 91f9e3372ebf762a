package httpapi

import (
	"strconv"

	"github.com/mailgate/mailgate/adapters/httpapi/wire"
	"github.com/mailgate/mailgate/domain"
)

// The list answers in XML follow DataContractSerializer's shape, as an
// ASP.NET Web API client reads it: the root named after the type, members in
// alphabetical order, the items as a collection element.

// xmlList writes <root><Items>…</Items>…</root>: items writes each item,
// after the members that follow Items in alphabetical order.
func xmlList(root string, items, after func(w *wire.XMLWriter) error) ([]byte, error) {
	var w wire.XMLWriter
	w.OpenRoot(root)
	w.Open("Items")
	if err := items(&w); err != nil {
		return nil, err
	}
	w.Close("Items")
	if err := after(&w); err != nil {
		return nil, err
	}
	w.Close(root)
	return w.Bytes(), nil
}

// encodeMessageListXML writes a page of messages as a MessageList.
func encodeMessageListXML(items []wire.MessageView, nextCursor string) ([]byte, error) {
	return xmlList("MessageList", func(w *wire.XMLWriter) error {
		for _, v := range items {
			if err := w.Message(v); err != nil {
				return err
			}
		}
		return nil
	}, func(w *wire.XMLWriter) error {
		w.Value("NextCursor", nextCursor)
		return nil
	})
}

// encodeMessageEventsXML writes a message's timeline as a MessageEventList.
func encodeMessageEventsXML(messageID string, items []eventView) ([]byte, error) {
	return xmlList("MessageEventList", func(w *wire.XMLWriter) error {
		for _, e := range items {
			w.Open("MessageEvent")
			w.Value("CreatedAt", wire.XMLDate(e.CreatedAt))
			w.Value("Detail", e.Detail)
			w.Value("Recipient", e.Recipient)
			w.Value("Sequence", strconv.FormatInt(e.Sequence, 10))
			w.Value("SmtpCode", strconv.Itoa(e.SMTPCode))
			w.Value("Type", e.Type)
			w.Close("MessageEvent")
		}
		return nil
	}, func(w *wire.XMLWriter) error {
		w.Value("MessageId", messageID)
		return nil
	})
}

// encodeEventFeedXML writes a page of the event feed as an EventFeed.
func encodeEventFeedXML(items []domain.EventPayload, nextAfter string) ([]byte, error) {
	return xmlList("EventFeed", func(w *wire.XMLWriter) error {
		for _, e := range items {
			w.Open("Event")
			w.Value("CreatedAt", wire.XMLDate(e.CreatedAt))
			w.Value("Detail", e.Detail)
			w.Value("Id", e.ID)
			w.Value("MessageId", e.MessageID)
			w.Value("Recipient", e.Recipient)
			w.Value("SmtpCode", strconv.Itoa(e.SMTPCode))
			w.Value("SubscriptionId", e.SubscriptionID.String())
			w.Value("Type", e.Type)
			w.Close("Event")
		}
		return nil
	}, func(w *wire.XMLWriter) error {
		w.Value("NextAfter", nextAfter)
		return nil
	})
}

// nsProblem is the XML namespace of RFC 9457 problems.
const nsProblem = "urn:ietf:rfc:7807"

// encodeProblemXML writes p in the XML form of RFC 9457 (appendix B), with
// the gateway's extension members as further child elements. Empty members
// are left out.
func encodeProblemXML(p Problem) ([]byte, error) {
	var w wire.XMLWriter
	w.Declaration()
	w.OpenIn("problem", nsProblem)
	optional := func(name, s string) {
		if s != "" {
			w.Value(name, s)
		}
	}
	optional("type", p.Type)
	optional("title", p.Title)
	if p.Status != 0 {
		w.Value("status", strconv.Itoa(p.Status))
	}
	optional("detail", p.Detail)
	optional("instance", p.Instance)
	optional("code", p.Code)
	optional("field", p.Field)
	optional("ts", p.TS)
	optional("request_id", p.RequestID)
	w.Close("problem")
	return w.Bytes(), nil
}

package httpapi

import (
	"strconv"

	"github.com/mailgate/mailgate/domain"
)

// The list answers in XML follow DataContractSerializer's shape, as an
// ASP.NET Web API client reads it: the root named after the type, members in
// alphabetical order, the items as a collection element.

// xmlList writes <root><Items>…</Items>…</root>: items writes each item,
// after the members that follow Items in alphabetical order.
func xmlList(root string, items, after func(w *xmlWriter) error) ([]byte, error) {
	var w xmlWriter
	w.buf.WriteString(`<` + root + rootNamespaces + `>`)
	w.open("Items")
	if err := items(&w); err != nil {
		return nil, err
	}
	w.close("Items")
	if err := after(&w); err != nil {
		return nil, err
	}
	w.close(root)
	return w.buf.Bytes(), nil
}

// encodeMessageListXML writes a page of messages as a MessageList.
func encodeMessageListXML(items []messageView, nextCursor string) ([]byte, error) {
	return xmlList("MessageList", func(w *xmlWriter) error {
		for _, v := range items {
			if err := w.message(v, ""); err != nil {
				return err
			}
		}
		return nil
	}, func(w *xmlWriter) error {
		w.value("NextCursor", "", nextCursor)
		return nil
	})
}

// encodeMessageEventsXML writes a message's timeline as a MessageEventList.
func encodeMessageEventsXML(messageID string, items []eventView) ([]byte, error) {
	return xmlList("MessageEventList", func(w *xmlWriter) error {
		for _, e := range items {
			w.open("MessageEvent")
			w.value("CreatedAt", "", xmlDate(e.CreatedAt))
			w.value("Detail", "", e.Detail)
			w.value("Recipient", "", e.Recipient)
			w.value("Sequence", "", strconv.FormatInt(e.Sequence, 10))
			w.value("SmtpCode", "", strconv.Itoa(e.SMTPCode))
			w.value("Type", "", e.Type)
			w.close("MessageEvent")
		}
		return nil
	}, func(w *xmlWriter) error {
		w.value("MessageId", "", messageID)
		return nil
	})
}

// encodeEventFeedXML writes a page of the event feed as an EventFeed.
func encodeEventFeedXML(items []domain.EventPayload, nextAfter string) ([]byte, error) {
	return xmlList("EventFeed", func(w *xmlWriter) error {
		for _, e := range items {
			w.open("Event")
			w.value("CreatedAt", "", xmlDate(e.CreatedAt))
			w.value("Detail", "", e.Detail)
			w.value("Id", "", e.ID)
			w.value("MessageId", "", e.MessageID)
			w.value("Recipient", "", e.Recipient)
			w.value("SmtpCode", "", strconv.Itoa(e.SMTPCode))
			w.value("SubscriptionId", "", e.SubscriptionID.String())
			w.value("Type", "", e.Type)
			w.close("Event")
		}
		return nil
	}, func(w *xmlWriter) error {
		w.value("NextAfter", "", nextAfter)
		return nil
	})
}

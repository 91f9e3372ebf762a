package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/domain"
)

// The list answers in XML follow DataContractSerializer's shape, as an
// ASP.NET Web API client reads it: the root named after the type, members in
// alphabetical order, the items as a collection element.

// encodeMessageListXML writes a page of messages as a MessageList.
func encodeMessageListXML(items []messageView, nextCursor string) ([]byte, error) {
	var w xmlWriter
	w.buf.WriteString(`<MessageList` + rootNamespaces + `>`)
	w.open("Items")
	for _, v := range items {
		if err := w.message(v, ""); err != nil {
			return nil, err
		}
	}
	w.close("Items")
	w.value("NextCursor", "", nextCursor)
	w.close("MessageList")
	return w.buf.Bytes(), nil
}

// encodeMessageEventsXML writes a message's timeline as a MessageEventList.
func encodeMessageEventsXML(messageID string, items []eventView) []byte {
	var w xmlWriter
	w.buf.WriteString(`<MessageEventList` + rootNamespaces + `>`)
	w.open("Items")
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
	w.close("Items")
	w.value("MessageId", "", messageID)
	w.close("MessageEventList")
	return w.buf.Bytes()
}

// encodeEventFeedXML writes a page of the event feed as an EventFeed.
func encodeEventFeedXML(items []domain.EventPayload, nextAfter string) []byte {
	var w xmlWriter
	w.buf.WriteString(`<EventFeed` + rootNamespaces + `>`)
	w.open("Items")
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
	w.close("Items")
	w.value("NextAfter", "", nextAfter)
	w.close("EventFeed")
	return w.buf.Bytes()
}

// writeNegotiated answers 200 with jsonBody, or with the XML encodeXML
// makes when the client asks for XML.
func (s *Server) writeNegotiated(c *gin.Context, jsonBody any, encodeXML func() ([]byte, error)) {
	switch responseFormat(c) {
	case formatXML:
		body, err := encodeXML()
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.Data(http.StatusOK, xmlContentType(c), body)
	case formatJSON:
		c.PureJSON(http.StatusOK, jsonBody)
	default:
		s.writeError(c, &domain.Error{Code: codeNotAcceptable, Message: "this endpoint answers in application/json or application/xml"})
	}
}

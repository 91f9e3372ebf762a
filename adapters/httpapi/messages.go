package httpapi

import (
	"mime"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/domain"
)

// sendMessage is the seed API's POST api/messages/sendmessage: create, update
// or send a message described by a MessageComposeModel.
func (s *Server) sendMessage(c *gin.Context) {
	mediaType, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil {
		mediaType = ""
	}
	var model composeModel
	switch strings.ToLower(mediaType) {
	case "application/json", "text/json":
		model, err = decodeJSON(c.Request.Body)
	default:
		err = &domain.Error{Code: codeUnsupportedMediaType, Message: "send application/json or text/json"}
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	req, err := model.toRequest()
	if err != nil {
		s.writeError(c, err)
		return
	}
	principal := principalOf(c)
	msg, err := s.composer.Compose(c.Request.Context(), principal.SubscriptionID, req)
	if err != nil {
		s.writeError(c, err)
		return
	}
	status := http.StatusOK
	if msg.Version == 1 {
		status = http.StatusCreated
	}
	c.Header("Location", "/api/messages/"+msg.ID.String())
	s.writeMessage(c, status, msg)
}

func (s *Server) getMessage(c *gin.Context) {
	id, err := parseGUID("id", c.Param("id"))
	if err != nil {
		s.writeError(c, domain.ErrNotFound)
		return
	}
	msg, err := s.messages.GetMessage(c.Request.Context(), principalOf(c).SubscriptionID, id)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.writeMessage(c, http.StatusOK, msg)
}

func (s *Server) writeMessage(c *gin.Context, status int, msg *domain.Message) {
	c.Header("ETag", etag(msg.Version))
	c.PureJSON(status, newMessageView(msg))
}

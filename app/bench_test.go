package app

import (
	"net/http"
	"testing"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// BenchmarkSendMessageHTTP is the whole accept path over a real HTTP
// connection: auth, JSON decoding, validation, the sender check and the
// transactional write of message, recipients, events and delivery job. The
// workers run too, delivering to an in-process SMTP server, as in production.
func BenchmarkSendMessageHTTP(b *testing.B) {
	g := startGatewayWith(b, RoleAll, smtptest.Options{}, func(c *Config) { c.Workers = 8 })
	body := mustJSON(map[string]any{
		"sender_email": g.sender.Email, "subject": "benchmark", "body": "hello", "send": true,
		"to": rcpts("ada@example.net"), "cc": rcpts("bob@example.net"), "bcc": rcpts("eve@example.net"),
	})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res := g.do(b, http.MethodPost, "/api/messages/sendmessage", "application/json", g.token, body); res.status != http.StatusCreated {
			b.Fatalf("%d %s", res.status, res.body)
		}
	}
}

// BenchmarkGetMessageHTTP reads a message back: one pipelined, tenant-scoped batch.
func BenchmarkGetMessageHTTP(b *testing.B) {
	g := startGatewayWith(b, RoleAPI, smtptest.Options{}, nil)
	res := g.postJSON(b, mustJSON(map[string]any{"sender_email": g.sender.Email, "subject": "read me", "to": rcpts("ada@example.net")}))
	var v messageView
	res.decode(b, &v)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res := g.do(b, http.MethodGet, "/api/messages/"+v.ID, "", g.token, nil); res.status != http.StatusOK {
			b.Fatalf("%d", res.status)
		}
	}
}

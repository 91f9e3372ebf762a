package app

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
	"github.com/mailgate/mailgate/domain"
)

// BenchmarkInboundDSN hands DSNs to the inbound listener one after another
// over SMTP (each committed with its job before the 250) and reports how
// long the workers took to settle them all against their message.
func BenchmarkInboundDSN(b *testing.B) {
	g := startGatewayWith(b, RoleAll, smtptest.Options{}, withInboundAddresses)
	id := g.sendSimple(b, "bench", "gone@dest.example")
	g.waitForState(b, id, "sent")
	rp := g.returnPath(b, 1)
	unknown := domain.TokenAddress("bounce", testTokens(b).Mint(domain.PurposeBounce, uuid.New()), testBounceDomain)
	dsn := postfixDSN("gone@dest.example")
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		rcpt := unknown
		if i == 0 {
			rcpt = rp
		}
		if err := deliverSMTP(g.app.InboundAddr(), "", rcpt, dsn); err != nil {
			b.Fatal(err)
		}
	}
	accepted := time.Since(start)
	deadline := time.Now().Add(time.Minute)
	for {
		var left int
		if err := g.owner.QueryRow(context.Background(), `SELECT count(*) FROM inbound_messages WHERE status = 'received'`).Scan(&left); err != nil {
			b.Fatal(err)
		}
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(accepted.Microseconds())/float64(b.N), "µs-accept/op")
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs-settled/op")
}

package smtprelay_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/adapters/smtprelay"
	"github.com/mailgate/mailgate/adapters/smtprelay/smtptest"
)

// benchConns is how many connections, and concurrent senders, each
// benchmark uses: as many as the gateway's default delivery workers.
const benchConns = 50

// benchCases are the combinations both benchmarks run, named alike so that
// BenchmarkRelaySend and BenchmarkPlainClientCeiling line up in one run:
// message size, the latency a delaying proxy adds to each relay reply, and
// whether the sink offers PIPELINING (and the plain client uses it).
func benchCases() []struct {
	name       string
	size       int
	delay      time.Duration
	pipelining bool
} {
	var cases []struct {
		name       string
		size       int
		delay      time.Duration
		pipelining bool
	}
	for _, size := range []int{2 << 10, 100 << 10} {
		for _, delay := range []time.Duration{0, 20 * time.Millisecond} {
			for _, pipelining := range []bool{false, true} {
				cases = append(cases, struct {
					name       string
					size       int
					delay      time.Duration
					pipelining bool
				}{fmt.Sprintf("size=%dKB/delay=%v/pipelining=%v", size>>10, delay, pipelining), size, delay, pipelining})
			}
		}
	}
	return cases
}

// benchMessage is a prebuilt message of about size bytes to three recipients.
func benchMessage(size int) smtptest.Message {
	var b bytes.Buffer
	b.WriteString("From: Alice <alice@example.com>\r\nTo: bob@example.org, carol@example.net\r\n" +
		"Subject: Benchmark\r\nMessage-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n")
	line := bytes.Repeat([]byte("x"), 76)
	for b.Len() < size {
		b.Write(line[:min(len(line), max(size-b.Len()-2, 0))])
		b.WriteString("\r\n")
	}
	return smtptest.Message{
		From: "alice@example.com",
		To:   []string{"bob@example.org", "carol@example.net", "dave@example.com"},
		Data: b.Bytes(),
	}
}

// benchSink starts a discarding sink, behind a delaying proxy when delay is
// set, and returns the address clients should use.
func benchSink(b *testing.B, delay time.Duration, pipelining bool) (string, *smtptest.Server) {
	srv := smtptest.Start(b, smtptest.Options{Discard: true, NoPipelining: !pipelining})
	if delay == 0 {
		return srv.Addr(), srv
	}
	return smtptest.StartProxy(b, srv.Addr(), smtptest.ProxyOptions{Delay: delay}).Addr(), srv
}

// reportRate adds messages per second, the figure the two benchmarks compare.
func reportRate(b *testing.B, messages int, elapsed time.Duration) {
	b.ReportMetric(float64(messages)/elapsed.Seconds(), "msg/s")
}

// BenchmarkRelaySend sends b.N messages through one Transport from
// benchConns goroutines, so the pool holds benchConns connections.
func BenchmarkRelaySend(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			addr, srv := benchSink(b, bc.delay, bc.pipelining)
			cfg := configFor(b, addr)
			cfg.MaxIdleConns = benchConns
			transport := newTransport(b, cfg)
			msg := benchMessage(bc.size)
			env := smtprelay.Envelope{From: msg.From, To: msg.To}
			b.SetBytes(int64(len(msg.Data)))

			var next atomic.Int64
			var failed atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			b.ResetTimer()
			for range benchConns {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						for _, r := range transport.Send(context.Background(), env, msg.Data) {
							if r.Code != 250 {
								failed.Add(1)
							}
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			reportRate(b, b.N, time.Since(start))
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d recipients not accepted", n)
			}
			if got := srv.Delivered().Messages; got != b.N {
				b.Fatalf("sink got %d messages, want %d", got, b.N)
			}
		})
	}
}

// BenchmarkPlainClientCeiling sends the same messages to the same sink
// with a plain SMTP client over benchConns connections: the ceiling
// BenchmarkRelaySend is measured against.
func BenchmarkPlainClientCeiling(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			addr, _ := benchSink(b, bc.delay, bc.pipelining)
			msg := benchMessage(bc.size)
			msgs := make([]smtptest.Message, b.N)
			for i := range msgs {
				msgs[i] = msg
			}
			b.SetBytes(int64(len(msg.Data)))
			b.ResetTimer()
			res, err := smtptest.SendCeiling(context.Background(), addr, msgs, smtptest.CeilingOptions{Conns: benchConns, Pipelining: bc.pipelining})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			reportRate(b, res.Messages, res.Elapsed)
		})
	}
}

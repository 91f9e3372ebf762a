package wire

import (
	"bytes"
	"net/url"
	"os"
	"strings"
	"testing"
)

// The codecs read the declaration through reflection; these benchmarks
// keep an eye on what that costs per request.

func BenchmarkDecodeXMLSeedSample(b *testing.B) {
	sample, err := os.ReadFile("testdata/seed_sample.xml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeXML(bytes.NewReader(sample), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeXMLFullMessage(b *testing.B) {
	v := fullMessageView()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeXML(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeForm(b *testing.B) {
	values, err := url.ParseQuery("sender_email=a%40example.com&subject=Hi&body=text&send=true&send=false&importance=High" +
		"&To[0].EmailAddress=b%40example.com&To[0].DisplayName=B&cc[0][email_address]=c%40example.com&attachments=" + sampleGUID1 + "&ts=QEA%3D")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeForm(values, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJSON reads the accept benchmark's body: two To, one Cc, 1 KB of text.
func BenchmarkDecodeJSON(b *testing.B) {
	body := []byte(`{"sender_email":"sender@bench.example","subject":"Hello","body":"` +
		strings.Repeat("All work and no play makes a fast gateway. ", 25)[:1024] + `","importance":1,"send":true,` +
		`"to":[{"display_name":"One","email_address":"one@example.net"},{"display_name":"Two","email_address":"two@example.net"}],` +
		`"cc":[{"display_name":"Three","email_address":"three@example.net"}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeJSON(bytes.NewReader(body), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

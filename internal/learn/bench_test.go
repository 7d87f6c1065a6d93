package learn

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// BenchmarkLearn reads a log of gateway and DNS records into a Learner: the
// work of `airlock policy learn` per line.
func BenchmarkLearn(b *testing.B) {
	var log bytes.Buffer
	for i := range 1000 {
		log.Write(gwLine(b, i, "10.244.1.2:40000", "20.1.2.3:443", 443, "t1.telemetry.example-saas.com", "tcp", "https", "deny", "no_match", "would_deny", true))
		log.WriteByte('\n')
		log.Write(dnsLine(b, i, "10.244.0.10", "registry.k8s.io", "A", "allow", "rule_allow"))
		log.WriteByte('\n')
	}
	data := log.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		l := New(Options{Sources: groups})
		rd := NewReader(bytes.NewReader(data))
		for {
			r, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			l.Add(r)
		}
		_ = l.Proposal()
	}
}

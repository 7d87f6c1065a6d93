package dnsserver

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzHandle feeds arbitrary bytes as the client's query and as the
// forwarder's reply through the whole handler path (decision, cache,
// filter, private zones, observations, truncation). It must never panic
// or hang, and must always answer with the query's ID.
func FuzzHandle(f *testing.F) {
	seed := func(name string, qtype uint16, answers ...string) {
		q := new(dns.Msg)
		q.SetQuestion(name, qtype)
		q.SetEdns0(1232, false)
		qb, _ := q.Pack()
		r := new(dns.Msg)
		r.SetReply(q)
		for _, a := range answers {
			rr, err := dns.NewRR(a)
			if err != nil {
				f.Fatal(err)
			}
			r.Answer = append(r.Answer, rr)
		}
		rb, _ := r.Pack()
		f.Add(qb, rb)
	}
	seed("www.allowed.test.", dns.TypeA, "www.allowed.test. 60 IN A 1.2.3.4")
	seed("cdn.allowed.test.", dns.TypeA, "cdn.allowed.test. 60 IN CNAME edge.allowed.test.", "edge.allowed.test. 60 IN A 1.2.3.8")
	seed("evil.allowed.test.", dns.TypeA, "evil.allowed.test. 60 IN CNAME x.denied.test.", "x.denied.test. 60 IN A 1.2.3.7")
	seed("loop.allowed.test.", dns.TypeA, "loop.allowed.test. 60 IN CNAME loop.allowed.test.")
	seed("acr.allowed.test.", dns.TypeA, "acr.allowed.test. 60 IN CNAME acr.privatelink.test.")
	seed("local.allowed.test.", dns.TypeA, "local.allowed.test. 60 IN A 127.0.0.1")
	seed("any.allowed.test.", dns.TypeANY, `any.allowed.test. 60 IN HTTPS 1 . alpn="h2"`, "any.allowed.test. 60 IN AAAA ::ffff:10.0.0.1")
	seed("acr.privatelink.test.", dns.TypeTXT)
	seed("nope.privatelink.test.", dns.TypeA)
	seed("use-application-dns.net.", dns.TypeA)
	f.Add([]byte{}, []byte{})
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}, []byte{0xff})

	var cfg Config
	cfg.SetDefaults()
	cfg.Forwarders = []string{"127.0.0.1:9"}
	cfg.AllowQueryTypes = append(cfg.AllowQueryTypes, "ANY")
	cfg.AllowNames = []string{"*.cluster.local"}
	cfg.PrivateZones = privateZones()
	cfg.CacheEntries = 64
	cfg.ObservationEntries = 64
	srv, err := New(cfg, Deps{Policy: testPolicy(f)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, query, reply []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(query); err != nil {
			return // miekg's server answers FORMERR before the handler
		}
		srv.cache = newAnswerCache(64, time.Hour) // each input on its own
		srv.fwd.exchange = func(ctx context.Context, m *dns.Msg, addr string, tcp bool) (*dns.Msg, error) {
			r := new(dns.Msg)
			if err := r.Unpack(reply); err != nil {
				return nil, errors.New("bad reply")
			}
			r.Question = m.Question // let arbitrary answers reach the filter
			r.Truncated = false
			return r, nil
		}
		done := make(chan *dns.Msg, 1)
		go func() {
			done <- srv.handle(context.Background(), netip.MustParseAddr("10.0.0.1"), len(query)%2 == 0, req)
		}()
		select {
		case resp := <-done:
			if resp.Id != req.Id {
				t.Fatalf("handle: response ID %d, want %d", resp.Id, req.Id)
			}
			if _, err := resp.Pack(); err != nil && len(resp.Question) > 0 {
				t.Logf("pack: %v", err) // the writer reports it; nothing crashes
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("handle did not return within 5s")
		}
	})
}

package dnsserver

import (
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// A full cache must not scan itself on every insert: a scan frees a tenth
// of the bound, so 1,000 inserts into a cache of 100 scan at most ~91 times
// (they scanned 900 times when each scan freed one entry).
func TestEvictionIsAmortized(t *testing.T) {
	c := newAnswerCache(100, time.Hour)
	now := time.Unix(1000, 0)
	for i := 0; i < 1000; i++ {
		m := new(dns.Msg)
		m.SetQuestion("n"+strconv.Itoa(i)+".test.", dns.TypeA)
		rr, _ := dns.NewRR("n" + strconv.Itoa(i) + ".test. 300 IN A 192.0.2.1")
		m.Answer = []dns.RR{rr}
		c.put(cacheKey{name: "n" + strconv.Itoa(i) + ".test", qtype: dns.TypeA}, m, now)
		if n := c.len(); n > 100 {
			t.Fatalf("after %d inserts the cache holds %d entries, bound 100", i+1, n)
		}
	}
	if c.scans > 100 {
		t.Errorf("1000 inserts into a full cache of 100 scanned it %d times, want ≤ 100", c.scans)
	}
	// The newest entry is always kept.
	if _, _, ok := c.get(cacheKey{name: "n999.test", qtype: dns.TypeA}, now); !ok {
		t.Error("the entry just inserted was evicted")
	}
}

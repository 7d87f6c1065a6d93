//go:build e2e

package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// Issue 13's proof on the cluster rig (cluster_rig_test.go): node →
// {gw1, gw2} → inet with Redis, Azurite and keepalived. The parts run in
// order on one rig, each a subtest that prints its figures:
//
//	a: containerd pulls a 240 MiB image (4 × 60 MiB random layers, the
//	   upstream throttled) while gw1 is killed with SIGKILL in the middle;
//	   the pull completes through gw2, content verified, upstream GETs per
//	   blob counted.
//	b: DNS keeps answering during a: the longest gap without an answer,
//	   asked every 50 ms at the VIP and in resolv.conf order (gw1, gw2).
//	c: after the VIP moved: a new CONNECT and a new transparent flow pass
//	   through gw2, and a UDP flow to ntp.test (FQDN network rule), whose
//	   name the node resolved through gw1 before the kill, passes gw2.
//	e: gw1 back: containerd pulls through gw1 alone what gw2 cached, with
//	   no new upstream GET.
//	d: Redis killed: both replicas keep serving (DNS, cached and cold
//	   blobs, CONNECT), /readyz says degraded; Redis back: both recover
//	   without a restart.
//
// (e runs before d: d needs both replicas up.)
const (
	clBigRepo   = "cluster/big"
	clBigTag    = "1"
	clBigLayers = 4
	clBigLayer  = 60 << 20
	// clUpRate is the upstream link's rate per connection: a 60 MiB layer
	// takes about 4 s, the pull long enough to kill gw1 in its middle.
	clUpRate = 16 << 20
	// clKillAt is how many bytes the upstream has sent when gw1 is killed.
	clKillAt = 100 << 20
)

func TestE2EClusterFailover(t *testing.T) {
	c := newClusterRig(t, clUpRate)
	t.Logf("rig up: gw1 %s (pid %d), gw2 %s (pid %d), VIP %s on gw1; cluster section accepted: %v",
		clGw1Lan, c.gw1.proc.pid(), clGw2Lan, c.gw2.proc.pid(), clVIP, c.clusterKey)

	// The big image and a small one (pulled cold while Redis is down).
	start := time.Now()
	big := buildImage(t, "amd64", 1300, clBigLayers, clBigLayer)
	bigBlobs := seedImage(t, c.up, clBigRepo, clBigTag, big)
	small := buildImage(t, "amd64", 1400, 2, 1<<20)
	smallBlobs := seedImage(t, c.up, "cluster/small", "1", small)
	after := buildImage(t, "amd64", 1500, 2, 8<<20)
	afterBlobs := seedImage(t, c.up, "cluster/after", "1", after)
	var total int64
	if m, err := big.Manifest(); err == nil {
		for _, l := range m.Layers {
			total += l.Size
		}
	}
	t.Logf("seeded %s:%s (%d blobs, %s of layers) cluster/small:1 and cluster/after:1 in %s", clBigRepo, clBigTag, len(bigBlobs), mib(total), time.Since(start).Round(time.Millisecond))
	seeded := c.up.blobGETs(t)

	c.ctrd = startContainerdIn(t, c.node)
	ref := mcrHost + "/" + clBigRepo + ":" + clBigTag
	bothHosts := writeHostsToml(t, mcrHost, fmt.Sprintf(`server = "http://%[1]s"
[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]
[host."http://%[2]s"]
  capabilities = ["pull", "resolve"]
`, c.gw1.registryAddr(), c.gw2.registryAddr()))
	gw1Only := writeHostsToml(t, mcrHost, fmt.Sprintf(`server = "http://%[1]s"
[host."http://%[1]s"]
  capabilities = ["pull", "resolve"]
`, c.gw1.registryAddr()))

	// For c: the node resolves ntp.test through gw1 only, before the kill.
	if got := lookupA(t, c.node, clGw1Lan+":53", "ntp.test."); len(got) != 1 || got[0] != inetNTP {
		t.Fatalf("ntp.test through gw1 = %v, want [%s]", got, inetNTP)
	}
	if got := udpProbe(t, c.node, inetNTP+":123", 1500*time.Millisecond); !strings.HasPrefix(got, "ntp:") {
		t.Errorf("udp to ntp.test (%s:123) through gw1 before the kill answered %q, want the ntp echo", inetNTP, got)
	}

	// b runs all through a.
	probe := startGapProbes(t, c)

	var killAt, vipMovedAt time.Time
	t.Run("a_pull_survives_kill", func(t *testing.T) {
		type attempt struct {
			out string
			err error
			d   time.Duration
		}
		var mu sync.Mutex
		var attempts []attempt
		done := make(chan struct{})
		go func() {
			defer close(done)
			// kubelet retries a failed pull; so does this, 4 times at most.
			for range 4 {
				s := time.Now()
				out, err := c.ctrd.ctrQuiet("images", "pull", "--hosts-dir", bothHosts, ref)
				mu.Lock()
				attempts = append(attempts, attempt{out, err, time.Since(s)})
				mu.Unlock()
				if err == nil {
					return
				}
			}
		}()
		pullStart := time.Now()
		for c.upLink.forwarded.Load() < clKillAt {
			select {
			case <-done:
				t.Fatalf("the pull ended before the upstream had sent %s (sent %s): nothing to kill in the middle of", mib(clKillAt), mib(c.upLink.forwarded.Load()))
			case <-time.After(10 * time.Millisecond):
			}
			if time.Since(pullStart) > 2*time.Minute {
				t.Fatalf("upstream sent only %s in 2 min", mib(c.upLink.forwarded.Load()))
			}
		}
		killAt = time.Now()
		c.gw1.proc.kill()
		t.Logf("gw1 (pid %d) killed with SIGKILL %s into the pull, upstream had sent %s of %s",
			c.gw1.proc.pid(), killAt.Sub(pullStart).Round(time.Millisecond), mib(c.upLink.forwarded.Load()), mib(total))
		if h := c.waitVIP(t, 20*time.Second, c.gw2); h != c.gw2 {
			t.Errorf("VIP not on gw2 20s after the kill\ngw1 keepalived:\n%s\ngw2 keepalived:\n%s", c.gw1.keepalive.logTail(20), c.gw2.keepalive.logTail(20))
		} else {
			vipMovedAt = time.Now()
			t.Logf("VIP %s on gw2 %s after the kill (seen by polling every 50 ms)", clVIP, vipMovedAt.Sub(killAt).Round(time.Millisecond))
		}
		select {
		case <-done:
		case <-time.After(3 * time.Minute):
			t.Fatal("pull not done 3 min after the kill")
		}
		mu.Lock()
		defer mu.Unlock()
		for i, a := range attempts {
			t.Logf("ctr images pull attempt %d: %v after %s\n%s", i+1, a.err, a.d.Round(time.Millisecond), tailLines(ansiRE.ReplaceAllString(a.out, ""), 6))
		}
		last := attempts[len(attempts)-1]
		if last.err != nil {
			t.Fatalf("ctr images pull failed %d times; the last: %v\n%s\ncontainerd log:\n%s", len(attempts), last.err, last.out, c.ctrd.proc.logTail(20))
		}
		t.Logf("pull of %s complete %s after it started, %d attempt(s)", ref, time.Since(pullStart).Round(time.Millisecond), len(attempts))

		// Content: containerd's store verifies every digest on commit;
		// every blob must be there and the image complete (unpacked).
		have := c.ctrd.contentDigests(t)
		for _, d := range bigBlobs {
			if !have[d] {
				t.Errorf("containerd lacks %s after the pull", d)
			}
		}
		if out := c.ctrd.mustCtr(t, "images", "check"); !strings.Contains(out, "complete") {
			t.Errorf("ctr images check does not say complete:\n%s", out)
		}

		// Upstream GETs per blob: one fill per replica at most.
		got := c.up.waitBlobGETs(t, bigBlobs)
		var lines []string
		for _, d := range bigBlobs {
			n := got[d] - seeded[d]
			lines = append(lines, fmt.Sprintf("%s=%d", shortDigest(d), n))
			if n < 1 || n > 2 {
				t.Errorf("upstream GETs of %s: %d, want 1 (filled once) or 2 (gw1's fill cut by the kill, gw2's)", d, n)
			}
		}
		t.Logf("upstream GETs per blob (config, then layers): %s", strings.Join(lines, " "))
		g1, g2 := blobServes(t, c.gw1), blobServes(t, c.gw2)
		t.Logf("blob GETs answered: gw1 %v, gw2 %v", g1, g2)
		if len(g2) == 0 {
			t.Errorf("gw2 answered no blob GET: the pull did not go through gw2")
		}
		t.Logf("gw2 cluster leases: %s", leaseCounts(c, c.gw2))
	})

	t.Run("b_gaps_dns_gateway_registry", func(t *testing.T) {
		if killAt.IsZero() {
			t.Skip("no kill happened (a failed early)")
		}
		// Keep asking a little after the VIP moved, then stop.
		time.Sleep(2 * time.Second)
		res := probe.stop()
		for _, r := range res {
			gap, at := r.longestGap(killAt.Add(-time.Second))
			t.Logf("%s: %d probes, %d answered (%d by the second server), %d unanswered, slowest answer %s; longest gap without an answer around the kill: %s (starting %s after the kill)",
				r.name, r.sent, len(r.ok), r.second, r.sent-len(r.ok), r.slowest.Round(time.Millisecond), gap.Round(time.Millisecond), at.Sub(killAt).Round(time.Millisecond))
			if len(r.ok) == 0 || !r.ok[len(r.ok)-1].After(killAt) {
				t.Errorf("%s: no answer after the kill", r.name)
			}
		}
	})

	t.Run("c_flows_after_vip_move", func(t *testing.T) {
		if vipMovedAt.IsZero() {
			t.Skip("the VIP did not move (see a)")
		}
		// A new CONNECT through the explicit proxy at the VIP.
		conn, err := connectVia(c.node, clVIP+":"+clProxyPort, "allowed.test:443")
		if err != nil {
			t.Errorf("CONNECT allowed.test:443 via %s:%s after the VIP moved: %v", clVIP, clProxyPort, err)
		} else if body, err := httpsOver(conn, "allowed.test"); err != nil || body != "hello from allowed.test" {
			t.Errorf("HTTPS through the CONNECT tunnel: %q, %v", body, err)
		} else {
			t.Logf("CONNECT via VIP (gw2): %q", body)
		}
		// A new transparent flow: the node's default route is the VIP.
		conn, err = dialIn(c.node, "tcp", inetAllowed+":443", 3*time.Second)
		if err != nil {
			t.Errorf("transparent dial %s:443 after the VIP moved: %v", inetAllowed, err)
		} else if body, err := httpsOver(conn, "allowed.test"); err != nil || body != "hello from allowed.test" {
			t.Errorf("transparent HTTPS to allowed.test: %q, %v", body, err)
		} else {
			t.Logf("transparent flow via VIP (gw2): %q", body)
		}
		// The FQDN network rule: ntp.test was resolved through gw1 only.
		if got := udpProbe(t, c.node, inetNTP+":123", 3*time.Second); !strings.HasPrefix(got, "ntp:") {
			t.Errorf("udp to ntp.test (%s:123), resolved through gw1 before the kill, answered %q through gw2, want the ntp echo (gw2 must know gw1's DNS observation)", inetNTP, got)
		} else {
			t.Logf("FQDN network-rule flow to ntp.test (resolved through gw1) through gw2: %q", got)
		}
		// The flows above went through gw2: its decision records (a UDP
		// flow's record comes when it ends, udpIdleTimeout 1 s).
		time.Sleep(1500 * time.Millisecond)
		verdicts := map[string]int{}
		for _, rec := range airlockRecords(t, c.gw2.logPath()) {
			if rec["msg"] != "egress decision" {
				continue
			}
			verdicts[fmt.Sprintf("%v %v %v", rec["verdict"], rec["proto"], rec["rule"])]++
		}
		t.Logf("gw2 egress decisions (verdict proto rule → count): %v", verdicts)
		if verdicts["allow tcp web"] < 2 {
			t.Errorf("gw2 recorded %d allowed tcp flows by rule web, want ≥ 2 (the CONNECT and the transparent flow)", verdicts["allow tcp web"])
		}
		// Control: ntp2.test was never resolved; its address stays closed.
		if got := udpProbe(t, c.node, inetNTP2+":123", 1500*time.Millisecond); got != "" {
			t.Errorf("udp to %s:123 (ntp2.test, never resolved) answered %q, want no answer", inetNTP2, got)
		}
	})

	t.Run("e_gw1_back_serves_gw2_cache", func(t *testing.T) {
		if !c.gw1.proc.exited() {
			t.Skip("gw1 was not killed (see a)")
		}
		restart := time.Now()
		c.startReplica(t, c.gw1)
		t.Logf("gw1 restarted (pid %d), ready after %s", c.gw1.proc.pid(), time.Since(restart).Round(time.Millisecond))
		// nopreempt (the shipped keepalived example): the VIP stays on gw2
		// once gw1's check passes again (rise 2 × interval 2 s).
		time.Sleep(5 * time.Second)
		if h := c.vipHolder(t); h != c.gw2 {
			t.Errorf("VIP holder 5s after gw1 came back: %s, want gw2 (nopreempt)", replicaName(h))
		} else {
			t.Logf("VIP holder 5s after gw1 came back: gw2 (nopreempt)")
		}

		before := c.up.blobGETs(t)
		c.ctrd.mustCtr(t, "images", "rm", "--sync", ref)
		if have := c.ctrd.contentDigests(t); have[bigBlobs[1]] {
			t.Fatalf("containerd still holds %s after images rm: the pull would not fetch it", bigBlobs[1])
		}
		n0 := len(blobServes(t, c.gw1))
		s := time.Now()
		c.ctrd.mustCtr(t, "images", "pull", "--hosts-dir", gw1Only, ref)
		t.Logf("pull of %s through gw1 alone: %s", ref, time.Since(s).Round(time.Millisecond))
		have := c.ctrd.contentDigests(t)
		for _, d := range bigBlobs {
			if !have[d] {
				t.Errorf("containerd lacks %s after the pull through gw1", d)
			}
		}
		after := c.up.blobGETs(t)
		for _, d := range bigBlobs {
			if after[d] != before[d] {
				t.Errorf("upstream GETs of %s went from %d to %d during the pull through gw1, want none (gw2 cached it)", d, before[d], after[d])
			}
		}
		served := blobServes(t, c.gw1)[n0:]
		t.Logf("gw1 answered %d blob GETs after its restart, upstream GETs unchanged: %v", len(served), sameCounts(before, after, bigBlobs))
	})

	t.Run("d_redis_outage", func(t *testing.T) {
		if !c.clusterKey {
			t.Errorf("the replicas run without a cluster section (this airlock rejects it): no Redis to lose")
		}
		for _, g := range []*replica{c.gw1, c.gw2} {
			if g.proc.exited() {
				t.Fatalf("%s (pid %d) is not running: %v\n%s", g.name, g.proc.pid(), errString(g.proc.waitErr), g.proc.logTail(30))
			}
		}
		pids := []int{c.gw1.proc.pid(), c.gw2.proc.pid()}
		down := time.Now()
		c.redis.Stop()
		t.Logf("Redis killed (SIGKILL)")
		for _, g := range []*replica{c.gw1, c.gw2} {
			body := waitReadyz(t, c, g, 15*time.Second, "degraded", "redis")
			t.Logf("%s /readyz %s after Redis died: %q; airlock_cluster_redis_up=%s", g.name, time.Since(down).Round(time.Millisecond), body, metricStr(c, g, "airlock_cluster_redis_up"))
		}
		// Both keep serving: DNS, a cached blob, a cold image, CONNECT.
		for i, g := range []*replica{c.gw1, c.gw2} {
			if got := lookupA(t, c.node, g.lanAddr+":53", "allowed.test."); len(got) != 1 || got[0] != inetAllowed {
				t.Errorf("%s DNS while Redis is down: allowed.test = %v", g.name, got)
			}
			hc := nsClient(c.node, time.Minute)
			for _, d := range []string{bigBlobs[0], smallBlobs[i%len(smallBlobs)], smallBlobs[(i+1)%len(smallBlobs)]} {
				repo := clBigRepo
				if d != bigBlobs[0] {
					repo = "cluster/small"
				}
				got, err := getBlob(hc, g.registryAddr(), repo, d)
				if err != nil || got != d {
					t.Errorf("%s GET blob %s of %s while Redis is down: digest %s, %v", g.name, shortDigest(d), repo, shortDigest(got), err)
				}
			}
			conn, err := connectVia(c.node, g.lanAddr+":"+clProxyPort, "allowed.test:443")
			if err == nil {
				_, err = httpsOver(conn, "allowed.test")
			}
			if err != nil {
				t.Errorf("%s CONNECT while Redis is down: %v", g.name, err)
			}
		}
		t.Logf("while Redis was down both replicas answered DNS, served a cached blob, filled cold blobs and tunnelled a CONNECT (errors above if not)")
		sg := c.up.blobGETs(t)
		var counts []string
		for _, d := range smallBlobs {
			n := sg[d] - seeded[d]
			counts = append(counts, fmt.Sprintf("%s=%d", shortDigest(d), n))
			if n < 1 || n > 2 {
				t.Errorf("upstream GETs of %s during the outage: %d, want 1 or 2 (at most one fill per replica)", d, n)
			}
		}
		t.Logf("upstream GETs of cluster/small's blobs (cold during the outage, local leases only): %s", strings.Join(counts, " "))

		up := time.Now()
		c.redis.Restart()
		t.Logf("Redis back (empty)")
		for i, g := range []*replica{c.gw1, c.gw2} {
			body := waitReadyz(t, c, g, 20*time.Second, "ready", "")
			t.Logf("%s /readyz %s after Redis came back: %q; airlock_cluster_redis_up=%s", g.name, time.Since(up).Round(time.Millisecond), body, metricStr(c, g, "airlock_cluster_redis_up"))
			if g.proc.exited() || g.proc.pid() != pids[i] {
				t.Errorf("%s was restarted (pid %d → %d, exited %v)", g.name, pids[i], g.proc.pid(), g.proc.exited())
			}
			if v, ok := c.metric(g, "airlock_cluster_redis_up"); !ok || v != 1 {
				t.Errorf("%s airlock_cluster_redis_up = %g (present %v) after Redis came back, want 1", g.name, v, ok)
			}
		}

		// Coordinated again: cold blobs asked of both replicas at once are
		// fetched upstream once (a cluster-wide fill lease).
		var wg sync.WaitGroup
		errs := make(chan error, 2*len(afterBlobs))
		for _, g := range []*replica{c.gw1, c.gw2} {
			for _, d := range afterBlobs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got, err := getBlob(nsClient(c.node, time.Minute), g.registryAddr(), "cluster/after", d)
					if err == nil && got != d {
						err = fmt.Errorf("digest %s", got)
					}
					if err != nil {
						errs <- fmt.Errorf("%s GET %s: %w", g.name, shortDigest(d), err)
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("cold blob of cluster/after through both replicas at once: %v", err)
		}
		ag := c.up.waitBlobGETs(t, afterBlobs)
		counts = counts[:0]
		for _, d := range afterBlobs {
			counts = append(counts, fmt.Sprintf("%s=%d", shortDigest(d), ag[d]-seeded[d]))
			if n := ag[d] - seeded[d]; n != 1 {
				t.Errorf("upstream GETs of %s asked of gw1 and gw2 at once after Redis came back: %d, want 1 (one fill cluster-wide)", d, n)
			}
		}
		t.Logf("cluster/after (cold, asked of both replicas at once after the recovery): upstream GETs per blob %s; leases gw1 %s, gw2 %s",
			strings.Join(counts, " "), leaseCounts(c, c.gw1), leaseCounts(c, c.gw2))
	})
}

// leaseCounts renders airlock_cluster_leases_total by result on g.
func leaseCounts(c *clusterRig, g *replica) string {
	var parts []string
	for _, r := range []string{"acquired", "busy", "local", "lost"} {
		v, _ := c.metric(g, "airlock_cluster_leases_total", `result="`+r+`"`)
		parts = append(parts, fmt.Sprintf("%s=%g", r, v))
	}
	return strings.Join(parts, " ")
}

// replicaName is g's name, "none" for nil.
func replicaName(g *replica) string {
	if g == nil {
		return "none"
	}
	return g.name
}

// blobServes lists the bytes of g's 200 and 206 answers to blob GETs, in
// order.
func blobServes(t testing.TB, g *replica) []int64 {
	t.Helper()
	var out []int64
	for _, line := range strings.Split(g.logs(t), "\n") {
		var l requestLine
		if jsonLine(line, &l) && l.Msg == "request" && l.Route == "blob" && l.Method == http.MethodGet && (l.Status == http.StatusOK || l.Status == http.StatusPartialContent) {
			out = append(out, l.Bytes)
		}
	}
	return out
}

func sameCounts(a, b map[string]int, keys []string) bool {
	for _, k := range keys {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

// waitReadyz waits until g's /readyz is 200 and its body starts with
// prefix and contains sub; it fails the test at the deadline. It returns
// the body.
func waitReadyz(t testing.TB, c *clusterRig, g *replica, timeout time.Duration, prefix, sub string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var status int
	var body string
	for time.Now().Before(deadline) {
		status, body = c.readyz(g)
		if status == http.StatusOK && strings.HasPrefix(body, prefix) && strings.Contains(body, sub) {
			return strings.TrimSpace(body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s /readyz after %s: %d %q, want 200 %q… with %q", g.name, timeout, status, body, prefix, sub)
	return strings.TrimSpace(body)
}

func metricStr(c *clusterRig, g *replica, name string) string {
	v, ok := c.metric(g, name)
	if !ok {
		return "absent"
	}
	return fmt.Sprint(v)
}

// getBlob GETs a blob of the cache repository through the registry at
// addr (mirror style) and returns the digest of what came.
func getBlob(hc *http.Client, addr, repo, d string) (string, error) {
	resp, err := hc.Get("http://" + addr + "/v2/" + repo + "/blobs/" + d + "?ns=" + mcrHost)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// jsonLine decodes one JSON log line into v.
func jsonLine(line string, v any) bool {
	return strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), v) == nil
}

// gapProbe asks for allowed.test every 50 ms and records when answers came.
type gapProbe struct {
	name    string
	sent    int
	ok      []time.Time
	second  int           // answers that came from the second server
	slowest time.Duration // longest time from asking to an answer
}

// longestGap is the longest time between two answers (or from the last
// answer to the end) among answers after since, and when it began.
func (p *gapProbe) longestGap(since time.Time) (time.Duration, time.Time) {
	var gap time.Duration
	var at time.Time
	for i := 1; i < len(p.ok); i++ {
		if p.ok[i].Before(since) {
			continue
		}
		if d := p.ok[i].Sub(p.ok[i-1]); d > gap {
			gap, at = d, p.ok[i-1]
		}
	}
	return gap, at
}

type gapProbes struct {
	stopc chan struct{}
	wg    sync.WaitGroup
	res   []*gapProbe
}

func (p *gapProbes) stop() []*gapProbe {
	close(p.stopc)
	p.wg.Wait()
	return p.res
}

// startGapProbes asks from the node every 50 ms: at the VIP, and in
// resolv.conf order (gw1, then gw2 when gw1 does not answer within 250 ms
// or refuses).
func startGapProbes(t *testing.T, c *clusterRig) *gapProbes {
	t.Helper()
	dial := func(addr string) net.Conn {
		var conn net.Conn
		var err error
		netnstest.Do(t, c.node, func() { conn, err = net.Dial("udp", addr) })
		if err != nil {
			t.Fatalf("udp dial %s in node: %v", addr, err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	vip, g1, g2 := dial(clVIP+":53"), dial(clGw1Lan+":53"), dial(clGw2Lan+":53")
	ps := &gapProbes{stopc: make(chan struct{})}
	run := func(name string, ask func(p *gapProbe) bool) {
		p := &gapProbe{name: name}
		ps.res = append(ps.res, p)
		ps.wg.Add(1)
		go func() {
			defer ps.wg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ps.stopc:
					return
				case <-tick.C:
				}
				p.sent++
				s := time.Now()
				if ask(p) {
					now := time.Now()
					p.ok = append(p.ok, now)
					p.slowest = max(p.slowest, now.Sub(s))
				}
			}
		}()
	}
	const timeout = 250 * time.Millisecond
	run("DNS at the VIP "+clVIP, func(*gapProbe) bool {
		_, err := dnsAsk(vip, "allowed.test", timeout)
		return err == nil
	})
	// The gateway at the VIP: a new CONNECT through the explicit proxy
	// (answered 200 once the gateway dialled allowed.test), and a new
	// transparent TLS flow (the default route is the VIP). The registry at
	// the VIP: GET /v2/. Each with 250 ms to connect and 1 s in all.
	run("gateway CONNECT at the VIP", func(*gapProbe) bool {
		conn, err := dialIn(c.node, "tcp", clVIP+":"+clProxyPort, timeout)
		if err != nil {
			return false
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprintf(conn, "CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
		return err == nil && resp.StatusCode == http.StatusOK
	})
	run("gateway transparent TLS at the VIP", func(*gapProbe) bool {
		conn, err := dialIn(c.node, "tcp", inetAllowed+":443", timeout)
		if err != nil {
			return false
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(time.Second))
		return tlsClient(conn, "allowed.test").Handshake() == nil
	})
	run("registry GET /v2/ at the VIP", func(*gapProbe) bool {
		conn, err := dialIn(c.node, "tcp", clVIP+":5000", timeout)
		if err != nil {
			return false
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprintf(conn, "GET /v2/ HTTP/1.1\r\nHost: %s:5000\r\nConnection: close\r\n\r\n", clVIP)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		return err == nil && resp.StatusCode == http.StatusOK
	})
	run("DNS in resolv.conf order (gw1, gw2; 250 ms each)", func(p *gapProbe) bool {
		if _, err := dnsAsk(g1, "allowed.test", timeout); err == nil {
			return true
		}
		_, err := dnsAsk(g2, "allowed.test", timeout)
		if err == nil {
			p.second++
		}
		return err == nil
	})
	t.Cleanup(func() {
		select {
		case <-ps.stopc:
		default:
			ps.stop()
		}
	})
	return ps
}

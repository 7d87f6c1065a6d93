//go:build e2e

package egress

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlockdev/airlock/internal/hostfw"
	"github.com/airlockdev/airlock/internal/netclass"
	"github.com/airlockdev/airlock/internal/policy"
	"github.com/airlockdev/airlock/internal/testkit/netnstest"
)

// The UDP flood test (issue #10 point 5): one client floods the gateway's
// UDP listeners from many source ports, and another client's NTP-like
// requests must still be answered, on the TPROXY path (listener l4_udp)
// and on a UDP DNAT listener (dnat_udp).
//
//	node n0: B 198.18.1.2 (the victim), A 198.18.1.3, A2 198.18.1.4, A3..A5 198.18.1.5-.7
//	gw: L4 UDP listener [::]:15002 (TPROXY), DNAT 198.18.1.1:8123 → 198.19.0.10:123 for B and A2
//	inet: UDP echo on 198.19.0.10:123 (allowed by a network rule), nothing allowed on udp/443
//
// The gateway runs with udpMaxFlows 64 (the default is 4096) so that a
// flood of a few hundred datagrams fills a table; the table logic is the
// same at any size, and the flood is 128 source ports per attacker.

const e2eFloodHelperEnv = "AIRLOCK_EGRESS_E2E_UDP_FLOOD"

// floodMaxFlows is gateway.udpMaxFlows in the flood test's gateway.
const floodMaxFlows = 64

func floodPolicy() policy.Config {
	return policy.Config{RuleCollectionGroups: []policy.RuleCollectionGroup{{Name: "g", Priority: 100, RuleCollections: []policy.RuleCollection{
		{
			Name: "inbound", Type: policy.TypeDNAT, Priority: 100, Action: policy.ActionAllow,
			Rules: []policy.Rule{{Name: "ntp-in", Protocols: []string{"UDP"}, SourceAddresses: []string{"198.18.1.2", "198.18.1.4"},
				DestinationAddresses: []string{"198.18.1.1"}, DestinationPorts: []string{"8123"}, TranslatedAddress: "198.19.0.10", TranslatedPort: "123"}},
		},
		{
			Name: "net", Type: policy.TypeNetwork, Priority: 200, Action: policy.ActionAllow,
			Rules: []policy.Rule{{Name: "ntp", Protocols: []string{"UDP"}, SourceAddresses: []string{"*"}, DestinationAddresses: []string{"198.19.0.10/32"}, DestinationPorts: []string{"123"}}},
		},
	}}}}
}

// TestE2EUDPFloodHelper is the gateway process of TestE2EUDPFlood: the L4
// UDP listener and the UDP DNAT listener, udpMaxFlows 64, every other UDP
// key at its default. On SIGUSR1 it writes its airlock_egress_udp_*
// metrics to the file the env variable names.
func TestE2EUDPFloodHelper(t *testing.T) {
	metricsFile := os.Getenv(e2eFloodHelperEnv)
	if metricsFile == "" {
		t.Skip("helper process of TestE2EUDPFlood")
	}
	p, err := policy.Compile(floodPolicy())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{UDPMaxFlows: floodMaxFlows, AllowedInternalRanges: netclass.MustParseRanges("198.18.0.0/15")}
	cfg.SetDefaults()
	reg := prometheus.NewRegistry()
	srv, err := New(&cfg, Deps{Policy: p, Logger: slog.New(slog.NewJSONHandler(os.Stdout, nil)), Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pc, err := ListenTransparentUDP(ctx, "[::]:15002")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeL4UDP(ctx, pc)
	dn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("198.18.1.1:8123")))
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeDNATUDP(ctx, dn)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	os.Stderr.WriteString("READY\n")
	for range usr1 {
		writeUDPMetrics(reg, metricsFile)
	}
}

// writeUDPMetrics writes the airlock_egress_udp_* series of reg to path,
// one "name{labels} value" a line, atomically.
func writeUDPMetrics(reg *prometheus.Registry, path string) {
	mfs, err := reg.Gather()
	var lines []string
	if err != nil {
		lines = append(lines, "gather: "+err.Error())
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "airlock_egress_udp_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			lines = append(lines, fmt.Sprintf("%s{%s} %g", mf.GetName(), strings.Join(labels, ","), v))
		}
	}
	sort.Strings(lines)
	tmp := path + ".tmp"
	if os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644) == nil {
		os.Rename(tmp, path)
	}
}

// floodGateway is a running TestE2EUDPFloodHelper.
type floodGateway struct {
	cmd     *exec.Cmd
	metrics string
	logs    string
}

// startFloodGateway runs the helper in namespace ns and waits for READY;
// it is stopped by its PID at cleanup.
func startFloodGateway(t *testing.T, ns string) *floodGateway {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	g := &floodGateway{metrics: dir + "/metrics.txt", logs: dir + "/gw.log"}
	logs, err := os.Create(g.logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^TestE2EUDPFloodHelper$", "-test.v")
	cmd.Env = append(os.Environ(), e2eFloodHelperEnv+"="+g.metrics)
	cmd.Stdout = logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Pdeathsig fires when the thread that forked the child ends, and Go
	// ends the thread of a goroutine that exits locked (netnstest.Run's
	// goroutine does when it cannot switch back): the helper is started
	// from a thread kept locked until it stopped.
	started := make(chan error, 1)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		started <- cmd.Start()
		<-release // then exits locked: the thread ends
	}()
	if err := <-started; err != nil {
		close(release)
		t.Fatal(err)
	}
	g.cmd = cmd
	t.Cleanup(func() {
		defer close(release)
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("flood gateway helper did not start")
	}
	return g
}

// udpMetrics asks the helper for its UDP metrics and returns them.
func (g *floodGateway) udpMetrics(t *testing.T) string {
	t.Helper()
	os.Remove(g.metrics)
	if err := g.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return "signal: " + err.Error()
	}
	for range 50 {
		if b, err := os.ReadFile(g.metrics); err == nil {
			return string(b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(g.logs)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "(no metrics written; gateway output ends:\n" + string(b) + ")"
}

// recordCounts counts the helper's decision records by verdict.
func (g *floodGateway) recordCounts() string {
	b, err := os.ReadFile(g.logs)
	if err != nil {
		return err.Error()
	}
	n := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == recordMsg {
			n[fmt.Sprint(m["verdict"])]++
		}
	}
	return fmt.Sprintf("%d allow, %d deny", n["allow"], n["deny"])
}

// flooder sends one datagram from each of its sockets (distinct source
// ports of one address) to dst per round.
type flooder struct {
	conns []*net.UDPConn
	dst   netip.AddrPort
}

// newFlooder opens ports sockets on src inside namespace ns.
func newFlooder(t *testing.T, ns, src string, ports int, dst netip.AddrPort) *flooder {
	t.Helper()
	f := &flooder{dst: dst}
	netnstest.Do(t, ns, func() {
		for range ports {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)})
			if err != nil {
				t.Errorf("flood socket on %s: %v", src, err)
				return
			}
			f.conns = append(f.conns, c)
		}
	})
	t.Cleanup(func() {
		for _, c := range f.conns {
			c.Close()
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	return f
}

func (f *flooder) round() int {
	sent := 0
	for _, c := range f.conns {
		if _, err := c.WriteToUDPAddrPort([]byte("flood"), f.dst); err == nil {
			sent++
		}
	}
	return sent
}

// floodScenario is one flood and the victim's requests during it.
type floodScenario struct {
	name string
	// attackers are the flooding source addresses, each sending from
	// floodPorts source ports to floodDst.
	attackers []string
	floodDst  string
	// askDst is where B (198.18.1.2) sends its requests.
	askDst string
}

const (
	floodPorts  = 128 // source ports per attacker
	floodRounds = 400 // at most, one every 50 ms, while B asks
	victimAsks  = 16  // B's requests, each from a fresh source port,
	// one every victimEvery (so B, like an NTP client, does not hold
	// more flows than its share: its old ones go idle)
	victimEvery   = 250 * time.Millisecond
	victimAddress = "198.18.1.2"
)

// TestE2EUDPFlood: during a flood from one source (or several, each
// flooding from 128 source ports), another source's requests to an
// allowed UDP destination are all answered, on the TPROXY path and on a
// UDP DNAT listener. It logs B's answer rate and the gateway's UDP
// metrics for each scenario.
func TestE2EUDPFlood(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("e2e: needs root for network namespaces, nftables and TPROXY")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("e2e: %s not installed", tool)
		}
	}
	p, err := policy.Compile(floodPolicy())
	if err != nil {
		t.Fatal(err)
	}
	rules := RulesInput{TransparentPort: 15001, L4Port: 15002, L4Ports: p.NetworkPorts()}
	tp := e2eTopology(t)
	for _, a := range []string{"198.18.1.4/24", "198.18.1.5/24", "198.18.1.6/24", "198.18.1.7/24"} {
		netnstest.Exec(t, "ip", "-n", tp.node, "addr", "add", a, "dev", "alxu"+strings.TrimPrefix(tp.node, "alxu-node-")+"n0")
	}
	netnstest.Do(t, tp.gw, func() {
		if err := InstallRules(context.Background(), hostfw.Exec{}, rules); err != nil {
			t.Errorf("install rules in gw: %v", err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	netnstest.Do(t, tp.inet, func() { udpEcho(t, "198.19.0.10:123") })

	scenarios := []floodScenario{
		{name: "l4 denied udp/443 from one source", attackers: []string{"198.18.1.3"}, floodDst: "198.19.0.10:443", askDst: "198.19.0.10:123"},
		{name: "l4 allowed udp/123 from one source", attackers: []string{"198.18.1.3"}, floodDst: "198.19.0.10:123", askDst: "198.19.0.10:123"},
		{name: "l4 allowed udp/123 from five sources", attackers: []string{"198.18.1.3", "198.18.1.4", "198.18.1.5", "198.18.1.6", "198.18.1.7"}, floodDst: "198.19.0.10:123", askDst: "198.19.0.10:123"},
		{name: "dnat from a source the rule denies", attackers: []string{"198.18.1.3"}, floodDst: "198.18.1.1:8123", askDst: "198.18.1.1:8123"},
		{name: "dnat from a source the rule allows", attackers: []string{"198.18.1.4"}, floodDst: "198.18.1.1:8123", askDst: "198.18.1.1:8123"},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			g := startFloodGateway(t, tp.gw) // a fresh gateway: no flows left from another scenario
			snmp := udpSNMP(tp.gw)
			answered, sent := floodAndAsk(t, tp.node, sc)
			t.Logf("%s: B answered %d/%d during the flood (%d flood datagrams sent by %d source(s) x %d ports)",
				sc.name, answered, victimAsks, sent, len(sc.attackers), floodPorts)
			t.Logf("gateway metrics after the flood:\n%s", g.udpMetrics(t))
			t.Logf("gateway namespace's kernel UDP counters: %s", snmpDelta(snmp, udpSNMP(tp.gw)))
			t.Logf("decision records so far: %s", g.recordCounts())
			if answered != victimAsks {
				t.Errorf("B's requests to %s answered during the flood = %d/%d, want %d/%d", sc.askDst, answered, victimAsks, victimAsks, victimAsks)
			}
		})
	}
}

// floodAndAsk starts the flood (its first round is sent before B's first
// request), makes B's requests while it goes on, stops it, and returns
// how many of B's requests were answered and how many flood datagrams
// were sent.
func floodAndAsk(t *testing.T, node string, sc floodScenario) (answered, sent int) {
	dst := netip.MustParseAddrPort(sc.floodDst)
	var fs []*flooder
	for _, a := range sc.attackers {
		fs = append(fs, newFlooder(t, node, a, floodPorts, dst))
	}
	var mu sync.Mutex
	for _, f := range fs {
		sent += f.round()
	}
	time.Sleep(200 * time.Millisecond) // let the gateway take in the first round
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for range floodRounds {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			n := 0
			for _, f := range fs {
				n += f.round()
			}
			mu.Lock()
			sent += n
			mu.Unlock()
		}
	}()
	ask := netip.MustParseAddrPort(sc.askDst)
	for i := range victimAsks {
		next := time.Now().Add(victimEvery)
		var c *net.UDPConn
		netnstest.Do(t, node, func() {
			var err error
			if c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(victimAddress)}); err != nil {
				t.Errorf("victim socket: %v", err)
			}
		})
		if c == nil {
			break
		}
		msg := fmt.Sprintf("ntp?%d", i)
		got, err := udpAsk(c, ask, msg, time.Second)
		c.Close()
		if err == nil && got == "echo:"+msg {
			answered++
		}
		time.Sleep(time.Until(next))
	}
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	return answered, sent
}

// udpSNMP returns the kernel's UDP counters of namespace ns that say
// whether datagrams were lost before the gateway read them.
func udpSNMP(ns string) map[string]int {
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		return nil
	}
	var names, values []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "Udp:" {
			if names == nil {
				names = f[1:]
			} else {
				values = f[1:]
			}
		}
	}
	m := make(map[string]int)
	for i := range min(len(names), len(values)) {
		m[names[i]], _ = strconv.Atoi(values[i])
	}
	return m
}

// snmpDelta prints the growth of the counters that matter from before to
// after.
func snmpDelta(before, after map[string]int) string {
	var b strings.Builder
	for _, k := range []string{"InDatagrams", "InErrors", "RcvbufErrors"} {
		fmt.Fprintf(&b, "%s +%d ", k, after[k]-before[k])
	}
	return strings.TrimSpace(b.String())
}

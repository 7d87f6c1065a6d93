package node

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func aps(ss ...string) []netip.AddrPort {
	out := make([]netip.AddrPort, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddrPort(s)
	}
	return out
}

// TestResolvConfReplicas: one nameserver per replica, in order, and short
// timeouts replacing the file's own, its other options kept.
func TestResolvConfReplicas(t *testing.T) {
	tests := []struct {
		name    string
		dns     []netip.AddrPort
		current string
		want    []string // lines after the two comment lines
	}{
		{"one server keeps the file's options", aps("10.42.2.4:53"), "nameserver 168.63.129.16\nsearch svc.cluster.local\noptions ndots:5 timeout:5\n",
			[]string{"nameserver 10.42.2.4", "search svc.cluster.local", "options ndots:5 timeout:5"}},
		{"two servers", aps("10.42.2.4:53", "10.42.2.5:53"), "nameserver 168.63.129.16\nsearch svc.cluster.local\noptions ndots:5 timeout:5 attempts:4\n",
			[]string{"nameserver 10.42.2.4", "nameserver 10.42.2.5", "search svc.cluster.local", "options ndots:5", "options timeout:1 attempts:2"}},
		{"three servers, an options line left empty", aps("10.42.2.4:53", "[fdaa:42::5]:53", "10.42.2.6:53"), "options timeout:3\n",
			[]string{"nameserver 10.42.2.4", "nameserver fdaa:42::5", "nameserver 10.42.2.6", "options timeout:1 attempts:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolvConf(tt.dns, tt.current)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")[2:]
			if diff := cmp.Diff(tt.want, lines); diff != "" {
				t.Errorf("resolvConf(%v) lines (-want +got):\n%s", tt.dns, diff)
			}
		})
	}
	_, err := resolvConf(aps("10.42.2.4:53", "10.42.2.5:5353"), "")
	if err == nil || !strings.Contains(err.Error(), "node.dns[1] 10.42.2.5:5353") {
		t.Errorf("resolvConf(second on :5353) error = %v, want one naming node.dns[1]", err)
	}
}

func TestResolvedDropInReplicas(t *testing.T) {
	got := resolvedDropIn(aps("10.42.2.4:53", "10.42.2.5:5353", "[fdaa:42::6]:53"))
	if want := "DNS=10.42.2.4 10.42.2.5:5353 fdaa:42::6\n"; !strings.Contains(got, want) {
		t.Errorf("resolvedDropIn(3 replicas) = %q, want the line %q", got, want)
	}
}

// TestConfigValidateReplicas: each entry of a list is checked on its own
// and named by its index; gateway stays one address.
func TestConfigValidateReplicas(t *testing.T) {
	tests := []struct {
		name string
		mut  func(*Config)
		want []string // "" = valid
	}{
		{"two registries, two dns", func(c *Config) {
			c.Registry = Addresses{"10.42.2.4:5000", "10.42.2.5:5000"}
			c.DNS = Addresses{"10.42.2.4:53", "[fdaa:42::5]:53"}
		}, nil},
		{"bad second registry", func(c *Config) { c.Registry = Addresses{"10.42.2.4:5000", "registry.local:5000"} },
			[]string{`registry[1]: host "registry.local" must be an IP address`}},
		{"repeated registry", func(c *Config) { c.Registry = Addresses{"10.42.2.4:5000", "10.42.2.4:5000"} },
			[]string{"registry[1]: 10.42.2.4:5000 repeats registry[0]"}},
		{"single bad registry keeps its key", func(c *Config) { c.Registry = Addresses{"10.42.2.4"} },
			[]string{"registry: must be ip:port"}},
		{"four dns", func(c *Config) {
			c.DNS = Addresses{"10.42.2.4:53", "10.42.2.5:53", "10.42.2.6:53", "10.42.2.7:53"}
		}, []string{"dns: at most 3 servers (resolv.conf reads no more), got 4"}},
		{"resolvconf port per entry", func(c *Config) {
			c.Resolver = ResolverResolvConf
			c.DNS = Addresses{"10.42.2.4:53", "10.42.2.5:5353"}
		}, []string{"dns[1]: resolv.conf cannot carry a port"}},
		{"two gateways", func(c *Config) { c.Gateway = Addresses{"10.42.2.4", "10.42.2.5"} },
			[]string{"gateway: must be one IP address, the next hop of the default route, got 2: use the virtual address (keepalived or a load balancer) of your gateway replicas"}},
		{"gateway with a port", func(c *Config) { c.Gateway = Addresses{"10.42.2.4:80"} },
			[]string{`gateway: must be an IP address (the next hop of the default route), got "10.42.2.4:80"; with several gateway replicas, use the virtual address`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			c.SetDefaults()
			tt.mut(&c)
			var got []string
			c.Validate(func(path, msg string) { got = append(got, path+": "+msg) })
			if len(got) != len(tt.want) {
				t.Fatalf("Validate(%s) = %q, want %d errors %q", tt.name, got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("Validate(%s)[%d] = %q, want it to start %q", tt.name, i, got[i], w)
				}
			}
		})
	}
}

// TestApplyReplicas: two registry and two DNS replicas end up in every
// hosts.toml, in resolv.conf and in the ruleset; status names them all.
func TestApplyReplicas(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, ResolvConf), []byte("nameserver 168.63.129.16\n"), 0o644)
	n := New(root, newFakeNet(), nil)
	res := mustApply(t, n, testInput(func(in *Input) {
		in.Config.Registry = Addresses{"10.42.2.4:5000", "10.42.2.5:5000"}
		in.Config.DNS = Addresses{"10.42.2.4:53", "10.42.2.5:53"}
	}))
	for _, up := range []string{"mcr.microsoft.com", "docker.io"} {
		b, err := os.ReadFile(filepath.Join(root, "etc/containerd/certs.d", up, "hosts.toml"))
		if err != nil {
			t.Fatal(err)
		}
		i4, i5 := strings.Index(string(b), `[host."http://10.42.2.4:5000`), strings.Index(string(b), `[host."http://10.42.2.5:5000`)
		if i4 < 0 || i5 < i4 {
			t.Errorf("%s hosts.toml =\n%s\nwant [host] 10.42.2.4:5000 then 10.42.2.5:5000", up, b)
		}
	}
	b, _ := os.ReadFile(filepath.Join(root, ResolvConf))
	if !strings.Contains(string(b), "nameserver 10.42.2.4\nnameserver 10.42.2.5\noptions timeout:1 attempts:2\n") {
		t.Errorf("resolv.conf =\n%s\nwant both replicas and short timeouts", b)
	}
	for _, want := range []string{
		`ip daddr 10.42.2.5 tcp dport 5000 accept comment "airlock registry (node.registry[1])"`,
		`ip daddr 10.42.2.5 meta l4proto { tcp, udp } th dport 53 accept comment "airlock DNS (node.dns[1])"`,
	} {
		if !strings.Contains(res.Plan.Ruleset, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, res.Plan.Ruleset)
		}
	}
	if res.State.Registry != "10.42.2.4:5000, 10.42.2.5:5000" || res.State.DNS != "10.42.2.4:53, 10.42.2.5:53" {
		t.Errorf("state registry %q dns %q, want both replicas", res.State.Registry, res.State.DNS)
	}
	st, err := n.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	st.Print(&sb)
	if !strings.Contains(sb.String(), "mcr.microsoft.com → 10.42.2.4:5000/v2/aks-managed-repository, 10.42.2.5:5000/v2/aks-managed-repository") {
		t.Errorf("status =\n%s\nwant the path-style mirror on both replicas", sb.String())
	}
}

func TestAddressesYAML(t *testing.T) {
	for _, tt := range []struct {
		a    Addresses
		want any
	}{{nil, ""}, {Addresses{"10.42.2.4:53"}, "10.42.2.4:53"}, {Addresses{"a", "b"}, []string{"a", "b"}}} {
		got, err := tt.a.MarshalYAML()
		if err != nil || !cmp.Equal(got, tt.want) {
			t.Errorf("%q.MarshalYAML() = %v, %v, want %v", tt.a, got, err, tt.want)
		}
	}
	var a Addresses
	if err := a.UnmarshalText([]byte("10.42.2.4:53")); err != nil || !cmp.Equal(a, Addresses{"10.42.2.4:53"}) {
		t.Errorf("UnmarshalText(10.42.2.4:53) = %q, %v", a, err)
	}
}

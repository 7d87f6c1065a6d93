package node

import "github.com/airlockdev/airlock/internal/hostfw/hostfwtest"

// fakeNet stands in for nft and ip: hostfwtest.Fake, with one default
// route to start from.
type fakeNet struct{ *hostfwtest.Fake }

func newFakeNet() *fakeNet {
	f := hostfwtest.New()
	f.Routes["4 main"] = []hostfwtest.Route{{Dst: "default", Gateway: "198.18.1.1", Dev: "eth0"}}
	return &fakeNet{f}
}

// table is airlock's table as last loaded; "" when there is none.
func (f *fakeNet) table() string { return f.Tables["inet "+Table] }

// route is the default route of family fam; nil when there is none.
func (f *fakeNet) route(fam string) *hostfwtest.Route { return f.Route(fam, "main", "default") }

func (f *fakeNet) loads() int { return f.Count("nft -f -") }

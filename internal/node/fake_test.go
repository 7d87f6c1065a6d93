package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// fakeNet stands in for nft and ip: it keeps airlock's table as the text
// last loaded and one default route per family.
type fakeNet struct {
	table  string // "" = no table
	routes map[string]*Route
	calls  []string
	// fail, when it returns an error for a call, makes the call fail.
	fail func(call string) error
}

func newFakeNet() *fakeNet {
	return &fakeNet{routes: map[string]*Route{"4": {Gateway: "198.18.1.1", Dev: "eth0"}}}
}

func (f *fakeNet) Run(_ context.Context, stdin string, name string, args ...string) ([]byte, error) {
	call := name + " " + strings.Join(args, " ")
	f.calls = append(f.calls, call)
	if f.fail != nil {
		if err := f.fail(call); err != nil {
			return nil, err
		}
	}
	switch call {
	case "nft -c -f -":
		return nil, nil
	case "nft -f -":
		head := "table inet " + Table + " {"
		if i := strings.Index(stdin, head); i >= 0 {
			f.table = stdin[i:]
		} else if strings.Contains(stdin, "delete table inet "+Table) {
			f.table = ""
		}
		return nil, nil
	case "nft list table inet " + Table:
		if f.table == "" {
			return nil, fmt.Errorf("no such table")
		}
		return []byte(f.table), nil
	case "nft -j list table inet " + Table:
		if f.table == "" {
			return nil, fmt.Errorf("no such table")
		}
		return f.json(), nil
	}
	if name == "ip" && len(args) >= 3 {
		fam := strings.TrimPrefix(args[0], "-")
		rest := strings.Join(args[1:], " ")
		switch {
		case rest == "-j route show default":
			if r := f.routes[fam]; r != nil {
				return json.Marshal([]Route{*r})
			}
			return []byte("[]"), nil
		case rest == "route del default":
			f.routes[fam] = nil
			return nil, nil
		case strings.HasPrefix(rest, "route replace default"):
			r := &Route{}
			for i := 1; i < len(args)-1; i++ {
				switch args[i] {
				case "via":
					r.Gateway = args[i+1]
				case "dev":
					r.Dev = args[i+1]
				}
			}
			f.routes[fam] = r
			return nil, nil
		}
	}
	return nil, fmt.Errorf("fake: unexpected command %q", call)
}

// json renders the table as `nft -j list table` would, enough for counts.
func (f *fakeNet) json() []byte {
	var objs []map[string]any
	chain := ""
	for _, l := range strings.Split(f.table, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "chain ") && strings.HasSuffix(t, "{"):
			chain = strings.Fields(t)[1]
			objs = append(objs, map[string]any{"chain": map[string]any{"family": "inet", "table": Table, "name": chain}})
		case strings.HasPrefix(t, "set "):
			chain = ""
		case t == "}":
			chain = ""
		case chain != "" && t != "" && !strings.HasPrefix(t, "type ") && !strings.HasPrefix(t, "#"):
			objs = append(objs, map[string]any{"rule": map[string]any{"family": "inet", "table": Table, "chain": chain}})
		}
	}
	b, _ := json.Marshal(map[string]any{"nftables": objs})
	return b
}

func (f *fakeNet) loads() int {
	n := 0
	for _, c := range f.calls {
		if c == "nft -f -" {
			n++
		}
	}
	return n
}

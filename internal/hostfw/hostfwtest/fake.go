package hostfwtest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/airlockdev/airlock/internal/hostfw"
)

// Route is one route as the fake keeps it and `ip -j route show` prints
// it.
type Route struct {
	Type    string `json:"type,omitempty"` // "" (unicast) or "local"
	Dst     string `json:"dst"`            // "default" or a prefix
	Gateway string `json:"gateway,omitempty"`
	Dev     string `json:"dev,omitempty"`
	Metric  int    `json:"metric,omitempty"`
}

// Fake stands in for nft and ip.
type Fake struct {
	// Tables holds each nftables table ("inet airlock_node") as the text
	// last loaded; a missing key is a missing table.
	Tables map[string]string
	// Rules holds the routing rules of each family ("4", "6") as their
	// selectors ("fwmark 0xa1 lookup 161").
	Rules map[string][]string
	// Routes holds the routes of each family and table ("4 main", "6 161").
	Routes map[string][]Route
	// Calls records every command run, "name arg…".
	Calls []string
	// Fail, when it returns an error for a call, makes the call fail
	// before it changes anything.
	Fail func(call string) error
}

var _ hostfw.Runner = (*Fake)(nil)

// New returns a Fake with no table, rule or route.
func New() *Fake {
	return &Fake{Tables: map[string]string{}, Rules: map[string][]string{}, Routes: map[string][]Route{}}
}

// FailOn returns a Fail function that fails every call equal to one of
// calls.
func FailOn(calls ...string) func(string) error {
	return func(c string) error {
		if slices.Contains(calls, c) {
			return fmt.Errorf("injected failure of %q", c)
		}
		return nil
	}
}

// Count returns how many calls equal call.
func (f *Fake) Count(call string) int {
	n := 0
	for _, c := range f.Calls {
		if c == call {
			n++
		}
	}
	return n
}

// Route returns the route to dst in table of family fam; nil when none.
func (f *Fake) Route(fam, table, dst string) *Route {
	for _, r := range f.Routes[fam+" "+table] {
		if r.Dst == dst {
			return &r
		}
	}
	return nil
}

// Run implements hostfw.Runner.
func (f *Fake) Run(_ context.Context, stdin string, name string, args ...string) ([]byte, error) {
	call := name + " " + strings.Join(args, " ")
	f.Calls = append(f.Calls, call)
	if f.Fail != nil {
		if err := f.Fail(call); err != nil {
			return nil, err
		}
	}
	switch name {
	case "nft":
		return f.nft(stdin, args)
	case "ip":
		return f.ip(args)
	}
	return nil, fmt.Errorf("fake: unexpected command %q", call)
}

func (f *Fake) nft(stdin string, args []string) ([]byte, error) {
	call := strings.Join(args, " ")
	switch {
	case call == "-c -f -":
		return nil, nil
	case call == "-f -":
		f.load(stdin)
		return nil, nil
	case len(args) == 4 && args[0] == "list" && args[1] == "table":
		if t, ok := f.Tables[args[2]+" "+args[3]]; ok {
			return []byte(t), nil
		}
		return nil, fmt.Errorf("no such table")
	case len(args) == 5 && args[0] == "-j" && args[1] == "list" && args[2] == "table":
		if t, ok := f.Tables[args[3]+" "+args[4]]; ok {
			return tableJSON(args[3], args[4], t), nil
		}
		return nil, fmt.Errorf("no such table")
	}
	return nil, fmt.Errorf("fake: unexpected nft %q", call)
}

// load applies text as one transaction: `table F N` declares a table,
// `delete table F N` deletes it, and a block `table F N {` … `}` (its
// closing brace at the start of a line) replaces it.
func (f *Fake) load(text string) {
	var key string
	var block strings.Builder
	for _, l := range strings.SplitAfter(text, "\n") {
		t := strings.TrimSpace(l)
		fs := strings.Fields(t)
		switch {
		case key != "":
			block.WriteString(l)
			if strings.HasPrefix(l, "}") {
				f.Tables[key] = block.String()
				key = ""
			}
		case len(fs) == 4 && fs[0] == "table" && fs[3] == "{":
			key = fs[1] + " " + fs[2]
			block.Reset()
			block.WriteString(l)
		case len(fs) == 3 && fs[0] == "table":
			if _, ok := f.Tables[fs[1]+" "+fs[2]]; !ok {
				f.Tables[fs[1]+" "+fs[2]] = fmt.Sprintf("table %s %s {\n}\n", fs[1], fs[2])
			}
		case len(fs) == 4 && fs[0] == "delete" && fs[1] == "table":
			delete(f.Tables, fs[2]+" "+fs[3])
		}
	}
}

// tableJSON renders a table as `nft -j list table` would, enough for
// hostfw.ParseCounts.
func tableJSON(family, table, text string) []byte {
	var objs []map[string]any
	chain := ""
	for _, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "chain ") && strings.HasSuffix(t, "{"):
			chain = strings.Fields(t)[1]
			objs = append(objs, map[string]any{"chain": map[string]any{"family": family, "table": table, "name": chain}})
		case strings.HasPrefix(t, "set "):
			chain = ""
		case t == "}":
			chain = ""
		case chain != "" && t != "" && !strings.HasPrefix(t, "type ") && !strings.HasPrefix(t, "#"):
			objs = append(objs, map[string]any{"rule": map[string]any{"family": family, "table": table, "chain": chain}})
		}
	}
	b, _ := json.Marshal(map[string]any{"nftables": objs})
	return b
}

// ip handles `ip [-4|-6] [-j] rule show|add|del SELECTOR…` and
// `ip [-4|-6] [-j] route show|add|replace|del …`.
func (f *Fake) ip(args []string) ([]byte, error) {
	fam, js := "4", false
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-6":
			fam = "6"
		case "-j":
			js = true
		}
		args = args[1:]
	}
	if len(args) < 2 {
		return nil, fmt.Errorf("fake: unexpected ip %q", args)
	}
	switch args[0] {
	case "rule":
		return f.rule(fam, args[1], strings.Join(args[2:], " "))
	case "route":
		return f.route(fam, js, args[1], args[2:])
	}
	return nil, fmt.Errorf("fake: unexpected ip %q", args)
}

func (f *Fake) rule(fam, verb, sel string) ([]byte, error) {
	rules := f.Rules[fam]
	i := slices.Index(rules, sel)
	switch verb {
	case "show":
		if i < 0 {
			return nil, nil
		}
		return []byte("32765:\tfrom all " + sel + "\n"), nil
	case "add":
		f.Rules[fam] = append(rules, sel)
		return nil, nil
	case "del":
		if i < 0 {
			return nil, fmt.Errorf("RTNETLINK answers: No such file or directory")
		}
		f.Rules[fam] = slices.Delete(rules, i, i+1)
		return nil, nil
	}
	return nil, fmt.Errorf("fake: unexpected ip rule %s", verb)
}

// route parses `[TYPE] DST [via G] [dev D] [metric M] [table T] [scope S]`.
func (f *Fake) route(fam string, js bool, verb string, args []string) ([]byte, error) {
	r, table := Route{}, "main"
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch a {
		case "via", "dev", "metric", "table", "scope", "proto":
			if i+1 >= len(args) {
				return nil, fmt.Errorf("fake: %s needs a value", a)
			}
			v := args[i+1]
			i++
			switch a {
			case "via":
				r.Gateway = v
			case "dev":
				r.Dev = v
			case "metric":
				r.Metric, _ = strconv.Atoi(v)
			case "table":
				table = v
			}
		case "local", "unicast":
			if a == "local" {
				r.Type = a
			}
		default:
			if a == "0.0.0.0/0" || a == "::/0" {
				a = "default"
			}
			r.Dst = a
		}
	}
	key := fam + " " + table
	routes := f.Routes[key]
	i := slices.IndexFunc(routes, func(x Route) bool { return x.Dst == r.Dst })
	switch verb {
	case "show", "list":
		var out []Route
		for _, x := range routes {
			if r.Dst == "" || x.Dst == r.Dst {
				out = append(out, x)
			}
		}
		if js {
			if out == nil {
				out = []Route{}
			}
			return json.Marshal(out)
		}
		var b strings.Builder
		for _, x := range out {
			b.WriteString(routeText(x) + "\n")
		}
		return []byte(b.String()), nil
	case "add", "replace":
		if i >= 0 && verb == "add" {
			return nil, fmt.Errorf("RTNETLINK answers: File exists")
		}
		if i >= 0 {
			routes[i] = r
		} else {
			f.Routes[key] = append(routes, r)
		}
		return nil, nil
	case "del":
		if i < 0 {
			return nil, fmt.Errorf("RTNETLINK answers: No such process")
		}
		f.Routes[key] = slices.Delete(routes, i, i+1)
		return nil, nil
	}
	return nil, fmt.Errorf("fake: unexpected ip route %s", verb)
}

func routeText(r Route) string {
	s := r.Dst
	if r.Type != "" {
		s = r.Type + " " + s
	}
	if r.Gateway != "" {
		s += " via " + r.Gateway
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	if r.Metric != 0 {
		s += " metric " + strconv.Itoa(r.Metric)
	}
	return s
}

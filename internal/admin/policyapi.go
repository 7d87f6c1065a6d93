package admin

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/airlockdev/airlock/internal/dnsname"
	"github.com/airlockdev/airlock/internal/policy"
)

// PolicyView is GET /api/policy: the running policy with its hits and the
// built-in tags it uses, expanded.
type PolicyView struct {
	Location string            `json:"location"`
	Groups   []GroupView       `json:"groups"`
	Hits     policy.HitsReport `json:"hits"`
	Tags     []TagView         `json:"tags"`
	Warnings []string          `json:"warnings,omitempty"`
}

// GroupView is a rule collection group with the keys of airlock.yaml.
type GroupView struct {
	Name            string           `json:"name"`
	Priority        int              `json:"priority"`
	RuleCollections []CollectionView `json:"ruleCollections"`
}

// CollectionView is a rule collection with the keys of airlock.yaml.
type CollectionView struct {
	Name     string                `json:"name"`
	Type     policy.CollectionType `json:"type"`
	Priority int                   `json:"priority"`
	Action   policy.Action         `json:"action"`
	Rules    []RuleView            `json:"rules"`
}

// RuleView is a rule with the keys of airlock.yaml; fields a rule does not
// set are left out.
type RuleView struct {
	Name                 string   `json:"name"`
	Protocols            []string `json:"protocols,omitempty"`
	SourceAddresses      []string `json:"sourceAddresses,omitempty"`
	DestinationAddresses []string `json:"destinationAddresses,omitempty"`
	DestinationFqdns     []string `json:"destinationFqdns,omitempty"`
	DestinationPorts     []string `json:"destinationPorts,omitempty"`
	TargetFqdns          []string `json:"targetFqdns,omitempty"`
	FqdnTags             []string `json:"fqdnTags,omitempty"`
	TranslatedAddress    string   `json:"translatedAddress,omitempty"`
	TranslatedPort       string   `json:"translatedPort,omitempty"`
}

// TagView is a built-in FQDN tag with its entries, <location> expanded.
type TagView struct {
	Name    string         `json:"name"`
	Version string         `json:"version"`
	Source  string         `json:"source"`
	Entries []TagEntryView `json:"entries"`
}

// TagEntryView is one name of a tag with every protocol it is listed for
// ("https:443").
type TagEntryView struct {
	FQDN      string   `json:"fqdn"`
	Protocols []string `json:"protocols"`
	// Skipped says why the entry is not in the compiled policy (it needs
	// policy.location, which is not set).
	Skipped string `json:"skipped,omitempty"`
}

func (a *api) policy(w http.ResponseWriter, r *http.Request) {
	cfg, pol := a.currentPolicy()
	v := PolicyView{Location: cfg.Location, Groups: groupsView(cfg), Hits: a.c.Hits.Report(cfg), Tags: tagsView(cfg)}
	if pol != nil {
		for _, w := range pol.Warnings() {
			v.Warnings = append(v.Warnings, w.String())
		}
	}
	writeJSON(w, v)
}

func groupsView(cfg policy.Config) []GroupView {
	out := []GroupView{}
	for _, g := range cfg.RuleCollectionGroups {
		gv := GroupView{Name: g.Name, Priority: g.Priority, RuleCollections: []CollectionView{}}
		for _, c := range g.RuleCollections {
			cv := CollectionView{Name: c.Name, Type: c.Type, Priority: c.Priority, Action: c.Action, Rules: []RuleView{}}
			for _, r := range c.Rules {
				cv.Rules = append(cv.Rules, RuleView(r))
			}
			gv.RuleCollections = append(gv.RuleCollections, cv)
		}
		out = append(out, gv)
	}
	return out
}

// tagsView expands every built-in tag cfg's rules name, in name order.
func tagsView(cfg policy.Config) []TagView {
	used := map[string]bool{}
	for _, g := range cfg.RuleCollectionGroups {
		for _, c := range g.RuleCollections {
			for _, r := range c.Rules {
				for _, t := range r.FqdnTags {
					used[strings.ToLower(t)] = true
				}
			}
		}
	}
	out := []TagView{}
	for _, t := range policy.Tags() {
		if !used[strings.ToLower(t.Name)] {
			continue
		}
		tv := TagView{Name: t.Name, Version: t.Version, Source: t.Source, Entries: []TagEntryView{}}
		at := map[string]int{}
		for _, e := range t.Entries {
			fqdn, skipped := e.FQDN, ""
			if e.NeedsLocation() {
				if cfg.Location == "" {
					skipped = "needs policy.location"
				} else {
					fqdn = strings.ReplaceAll(fqdn, policy.LocationPlaceholder, cfg.Location)
				}
			}
			proto := e.Protocol + ":" + strconv.Itoa(int(e.Port))
			i, ok := at[fqdn]
			if !ok {
				i = len(tv.Entries)
				at[fqdn] = i
				tv.Entries = append(tv.Entries, TagEntryView{FQDN: fqdn, Skipped: skipped})
			}
			if !slices.Contains(tv.Entries[i].Protocols, proto) {
				tv.Entries[i].Protocols = append(tv.Entries[i].Protocols, proto)
			}
		}
		out = append(out, tv)
	}
	return out
}

// ExplainView is GET /api/explain.
type ExplainView struct {
	Decision policy.Decision `json:"decision"`
	// Meaning is the reason in words.
	Meaning string     `json:"meaning"`
	Flow    FlowView   `json:"flow"`
	Steps   []StepView `json:"steps"`
	Notes   []string   `json:"notes"`
	// Text is what `airlock policy explain` prints.
	Text string `json:"text"`
}

// FlowView is the question explained.
type FlowView struct {
	Src      string   `json:"src"`
	Dst      string   `json:"dst"`
	Proto    string   `json:"proto"`
	App      string   `json:"app"`
	Name     string   `json:"name,omitempty"`
	DstNames []string `json:"dstNames,omitempty"`
}

// StepView is one rule tried.
type StepView struct {
	Type       policy.CollectionType `json:"type"`
	Group      string                `json:"group"`
	Collection string                `json:"collection"`
	Rule       string                `json:"rule"`
	Action     policy.Action         `json:"action"`
	Matched    bool                  `json:"matched"`
	Field      string                `json:"field,omitempty"`
	Detail     string                `json:"detail"`
}

func (a *api) explain(w http.ResponseWriter, r *http.Request) {
	f, err := parseFlow(r.URL.Query().Get)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	_, pol := a.currentPolicy()
	if pol == nil {
		writeError(w, http.StatusServiceUnavailable, "no policy is loaded: the gateway and DNS are not configured")
		return
	}
	e := pol.DecideExplain(f)
	v := ExplainView{Decision: e.Decision, Meaning: e.Decision.Reason.Meaning(), Steps: []StepView{}, Notes: e.Notes, Text: e.String(),
		Flow: FlowView{Src: e.Flow.Src.String(), Dst: e.Flow.Dst.String(), Proto: e.Flow.Proto.String(), App: e.Flow.App.String(), Name: e.Flow.Name.String()}}
	for _, n := range e.Flow.DstNames {
		v.Flow.DstNames = append(v.Flow.DstNames, n.String())
	}
	if v.Notes == nil {
		v.Notes = []string{}
	}
	for _, s := range e.Steps {
		v.Steps = append(v.Steps, StepView(s))
	}
	writeJSON(w, v)
}

// parseFlow reads src, dst, proto, sni and host as `airlock policy explain`
// reads its flags.
func parseFlow(get func(string) string) (policy.Flow, error) {
	var f policy.Flow
	src, dst, sni, host := get("src"), get("dst"), get("sni"), get("host")
	if src == "" || dst == "" {
		return f, fmt.Errorf("src (an IP address) and dst (HOST:PORT) are required")
	}
	if sni != "" && host != "" {
		return f, fmt.Errorf("give sni or host, not both")
	}
	var err error
	if f.Src, err = netip.ParseAddr(src); err != nil {
		return f, fmt.Errorf("src %q is not an IP address", src)
	}
	proto := get("proto")
	if proto == "" {
		proto = "tcp"
	}
	if f.Proto, err = policy.ParseProto(proto); err != nil {
		return f, fmt.Errorf("proto: %v", err)
	}
	h, p, err := net.SplitHostPort(dst)
	if err != nil {
		return f, fmt.Errorf("dst %q is not HOST:PORT", dst)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return f, fmt.Errorf("dst port %q is not a number from 0 to 65535", p)
	}
	if a, err := netip.ParseAddr(h); err == nil {
		f.Dst = netip.AddrPortFrom(a, uint16(port))
	} else {
		n, err := dnsname.Parse(h)
		if err != nil {
			return f, fmt.Errorf("dst host: %v", err)
		}
		// A name stands for "an address airlock DNS answered for it".
		f.Dst = netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(port))
		f.DstNames = []dnsname.Name{n}
	}
	for _, s := range []struct {
		v, key string
		app    policy.App
	}{{sni, "sni", policy.AppHTTPS}, {host, "host", policy.AppHTTP}} {
		if s.v == "" {
			continue
		}
		if f.Name, err = dnsname.Parse(s.v); err != nil {
			return f, fmt.Errorf("%s: %v", s.key, err)
		}
		f.App = s.app
	}
	return f, nil
}

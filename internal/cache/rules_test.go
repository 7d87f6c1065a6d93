package cache

import (
	"strings"
	"testing"
)

func compileOK(t *testing.T, in []Rule) *rules {
	t.Helper()
	var probs []string
	rs := compileRules(in, map[string]bool{"hub": true}, func(p, m string) { probs = append(probs, p+": "+m) })
	if len(probs) > 0 {
		t.Fatalf("compileRules = %v", probs)
	}
	return rs
}

func TestRuleMatching(t *testing.T) {
	rs := compileOK(t, []Rule{
		{Name: "mcr", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "aks-managed-repository/*"},
		{Name: "mcr-oss", SourceRepo: "mcr.microsoft.com/oss/kubernetes/*", TargetRepo: "k8s/*"},
		{Name: "ubuntu", SourceRepo: "docker.io/library/ubuntu", TargetRepo: "ubuntu", CredentialSet: "hub"},
		{Name: "hub", SourceRepo: "docker.io/*", TargetRepo: "docker/*"},
	})
	byTarget := []struct{ name, wantRule, wantUp string }{
		{"aks-managed-repository/oss/kubernetes/pause", "mcr", "oss/kubernetes/pause"},
		{"k8s/pause", "mcr-oss", "oss/kubernetes/pause"},
		{"ubuntu", "ubuntu", "library/ubuntu"},
		{"docker/nginx", "hub", "library/nginx"},
		{"docker/bitnami/redis", "hub", "bitnami/redis"},
		{"aks-managed-repository", "", ""}, // the prefix itself is not under it
		{"team/app", "", ""},
	}
	s := &Store{rules: rs}
	for _, tt := range byTarget {
		tg, ok := s.match(tt.name)
		got := ""
		if ok {
			got = tg.rule.name
		}
		if got != tt.wantRule || (ok && tg.repo != tt.wantUp) {
			t.Errorf("match(%q) = rule %q repo %q, want %q %q", tt.name, got, tg.repo, tt.wantRule, tt.wantUp)
		}
	}
	resolve := []struct{ name, ns, want, wantErr string }{
		{"oss/kubernetes/pause", "mcr.microsoft.com", "k8s/pause", ""}, // longest source wins
		{"azure/cni", "mcr.microsoft.com", "aks-managed-repository/azure/cni", ""},
		{"aks-managed-repository/x", "mcr.microsoft.com", "aks-managed-repository/x", ""}, // path style with ns
		{"nginx", "docker.io", "docker/library/nginx", ""},
		{"library/ubuntu", "registry-1.docker.io", "ubuntu", ""},
		{"evil/thing", "evil.example", "", "NAME_UNKNOWN"},
		{"team/app", "", "team/app", ""},
	}
	for _, tt := range resolve {
		got, err := s.Resolve(tt.name, tt.ns)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Resolve(%q, %q) = %q, %v; want %s", tt.name, tt.ns, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Resolve(%q, %q) = %q, %v; want %q", tt.name, tt.ns, got, err, tt.want)
		}
	}
}

func TestRuleValidation(t *testing.T) {
	tests := []struct {
		name string
		in   []Rule
		want string
	}{
		{"overlapping wildcards", []Rule{{Name: "a", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "x/*"}, {Name: "b", SourceRepo: "ghcr.io/*", TargetRepo: "x/y/*"}},
			`cacheRules[1].targetRepo: overlaps the wildcard target of rule "a" (cacheRules[0])`},
		{"star overlaps all", []Rule{{Name: "a", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "*"}, {Name: "b", SourceRepo: "ghcr.io/*", TargetRepo: "g/*"}},
			`cacheRules[1].targetRepo: overlaps the wildcard target of rule "a" (cacheRules[0])`},
		{"same exact target", []Rule{{Name: "a", SourceRepo: "docker.io/library/ubuntu", TargetRepo: "u"}, {Name: "b", SourceRepo: "docker.io/library/debian", TargetRepo: "u"}},
			`cacheRules[1].targetRepo: has the same target as rule "a" (cacheRules[0])`},
		{"wildcard to exact", []Rule{{Name: "a", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "x"}}, "cacheRules[0].targetRepo: a wildcard sourceRepo"},
		{"bad host", []Rule{{Name: "a", SourceRepo: "MCR.com/*", TargetRepo: "x/*"}}, "cacheRules[0].sourceRepo:"},
		{"traversal", []Rule{{Name: "a", SourceRepo: "mcr.microsoft.com/../*", TargetRepo: "x/*"}}, "cacheRules[0].sourceRepo: repository part"},
		{"inner star", []Rule{{Name: "a", SourceRepo: "mcr.microsoft.com/*", TargetRepo: "a/*/b"}}, "cacheRules[0].targetRepo: only a trailing"},
		{"duplicate name", []Rule{{Name: "a", SourceRepo: "x.io/a", TargetRepo: "a"}, {Name: "a", SourceRepo: "x.io/b", TargetRepo: "b"}}, `cacheRules[1].name: duplicate rule name "a"`},
		{"unknown credential set", []Rule{{Name: "a", SourceRepo: "x.io/a", TargetRepo: "a", CredentialSet: "nope"}}, `cacheRules[0].credentialSet: no credentialSets entry is named "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var probs []string
			compileRules(tt.in, map[string]bool{"hub": true}, func(p, m string) { probs = append(probs, p+": "+m) })
			if len(probs) == 0 || !strings.HasPrefix(probs[0], tt.want) {
				t.Errorf("compileRules = %q, want a problem starting %q", probs, tt.want)
			}
		})
	}
	many := make([]Rule, MaxRules+1)
	for i := range many {
		many[i] = Rule{Name: "r" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), SourceRepo: "x.io/a", TargetRepo: "t" + strings.Repeat("x", i)}
	}
	var probs []string
	compileRules(many, nil, func(p, m string) { probs = append(probs, p+": "+m) })
	if len(probs) == 0 || !strings.Contains(probs[0], "at most 1000") {
		t.Errorf("1001 rules: first problem %q, want the limit", probs)
	}
}

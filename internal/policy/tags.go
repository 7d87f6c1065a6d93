package policy

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/airlockdev/airlock/internal/dnsname"
)

// tags/tags.json is derived from the source data next to it
// (tags/aks-egress-rules.yaml, a copy of data/aks-egress-rules.yaml) by
// TestTagData in tags_data_test.go; without -update that test fails when the
// two disagree.
//
//go:generate go test -run ^TestTagData$ -update .
//go:embed tags/tags.json
var tagJSON []byte

// LocationPlaceholder is replaced by Config.Location in tag entries.
const LocationPlaceholder = "<location>"

// FQDNTag is a named, versioned list of target names with their protocols,
// usable in an application rule's fqdnTags. Every entry cites its public
// source; `airlock policy tags NAME` prints them.
type FQDNTag struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description"`
	// Source is the public document the entries come from; SourceSnapshot
	// pins the revision they were taken from.
	Source         string     `json:"source"`
	SourceSnapshot string     `json:"sourceSnapshot"`
	Selection      string     `json:"selection"`
	Entries        []TagEntry `json:"entries"`
}

// TagEntry is one name of a tag.
type TagEntry struct {
	// FQDN is the name as published: exact, "*.suffix", possibly holding
	// <location>.
	FQDN     string `json:"fqdn"`
	Protocol string `json:"protocol"` // http or https
	Port     uint16 `json:"port"`
	Purpose  string `json:"purpose"`
	// Source and SourceSnapshot cite where the entry is published.
	Source         string `json:"source"`
	SourceSnapshot string `json:"sourceSnapshot"`
}

// NeedsLocation reports whether the entry holds <location>.
func (e TagEntry) NeedsLocation() bool { return strings.Contains(e.FQDN, LocationPlaceholder) }

// Pattern returns the entry's name pattern with <location> replaced by
// location.
func (e TagEntry) Pattern(location string) (dnsname.Pattern, error) {
	s := e.FQDN
	if e.NeedsLocation() {
		if location == "" {
			return dnsname.Pattern{}, fmt.Errorf("%s needs policy.location", e.FQDN)
		}
		s = strings.ReplaceAll(s, LocationPlaceholder, location)
	}
	return dnsname.ParsePattern(s)
}

func (e TagEntry) appProto() (appProto, error) {
	return parseAppProto(fmt.Sprintf("%s:%d", e.Protocol, e.Port))
}

// tagFile is the layout of tags/tags.json.
type tagFile struct {
	SchemaVersion int       `json:"schemaVersion"`
	Tags          []FQDNTag `json:"tags"`
}

// loadTags decodes the embedded tag data. Each call returns fresh values.
func loadTags() ([]FQDNTag, error) {
	var f tagFile
	if err := json.Unmarshal(tagJSON, &f); err != nil {
		return nil, fmt.Errorf("decoding the embedded FQDN tags: %w", err)
	}
	if f.SchemaVersion != 1 {
		return nil, fmt.Errorf("embedded FQDN tags: schema version %d, want 1", f.SchemaVersion)
	}
	return f.Tags, nil
}

// Tags returns the built-in FQDN tags sorted by name. The embedded data is
// checked by the package's tests, so it decodes; nil would mean a broken
// build.
func Tags() []FQDNTag {
	tags, err := loadTags()
	if err != nil {
		return nil
	}
	slices.SortFunc(tags, func(a, b FQDNTag) int { return strings.Compare(a.Name, b.Name) })
	return tags
}

// Tag returns the built-in tag called name (compared case-insensitively).
func Tag(name string) (FQDNTag, bool) {
	for _, t := range Tags() {
		if strings.EqualFold(t.Name, name) {
			return t, true
		}
	}
	return FQDNTag{}, false
}

// tagNames lists the built-in tag names for error messages.
func tagNames(tags []FQDNTag) string {
	names := make([]string, len(tags))
	for i, t := range tags {
		names[i] = t.Name
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

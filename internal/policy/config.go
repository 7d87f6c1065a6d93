package policy

// Config is the policy section of airlock.yaml. The zero Config holds no
// rules, so every flow is denied (reason no_match).
type Config struct {
	// Location is the Azure region (for example "eastus") that expands
	// "<location>" in FQDN tag entries such as *.hcp.<location>.azmk8s.io.
	// Empty (the default) skips those entries, with a warning from Compile.
	Location string `yaml:"location"`
	// RuleCollectionGroups hold the rules. Empty (the default): deny all.
	RuleCollectionGroups []RuleCollectionGroup `yaml:"ruleCollectionGroups"`
}

// RuleCollectionGroup is a named, prioritized set of rule collections.
type RuleCollectionGroup struct {
	// Name is unique among groups; required. 1–80 letters, digits, '_',
	// '.', '-', starting with a letter or digit.
	Name string `yaml:"name"`
	// Priority orders groups within a rule type: 100 is processed first,
	// 65000 last. Required (0 is not a priority); unique among groups.
	Priority int `yaml:"priority"`
	// RuleCollections of any type; each type is processed in its own phase.
	RuleCollections []RuleCollection `yaml:"ruleCollections"`
}

// RuleCollection is a named, prioritized list of rules of one type with one
// action.
type RuleCollection struct {
	// Name is unique within its group; required; same form as group names.
	Name string `yaml:"name"`
	// Type is network, application or dnat; required.
	Type CollectionType `yaml:"type"`
	// Priority orders collections within the group: 100..65000, lower first.
	// Required; unique within the group.
	Priority int `yaml:"priority"`
	// Action is allow or deny; required. DNAT collections must say allow.
	Action Action `yaml:"action"`
	// Rules are tried in the order written.
	Rules []Rule `yaml:"rules"`
}

// Rule is one rule; which fields apply depends on its collection's type:
//
//	network:     protocols (TCP UDP ICMP Any), sourceAddresses,
//	             destinationAddresses and/or destinationFqdns, destinationPorts
//	application: protocols (http:PORT https:PORT), sourceAddresses,
//	             targetFqdns and/or fqdnTags
//	dnat:        protocols (TCP UDP), sourceAddresses, destinationAddresses
//	             (one address), destinationPorts (one port),
//	             translatedAddress, translatedPort
//
// A field set on a rule of another type is a validation error.
type Rule struct {
	// Name is unique within its collection; required; same form as group
	// names.
	Name string `yaml:"name"`
	// Protocols: TCP, UDP, ICMP or Any for network rules (case-insensitive);
	// http:PORT or https:PORT for application rules; TCP or UDP for DNAT.
	// Required, except for an application rule with only fqdnTags, whose
	// entries carry their own protocol.
	Protocols []string `yaml:"protocols"`
	// SourceAddresses are IP addresses, CIDRs or "*" (any). Required.
	SourceAddresses []string `yaml:"sourceAddresses"`
	// DestinationAddresses: network rules take IP addresses, CIDRs or "*";
	// a DNAT rule takes exactly one IP address, the gateway address it
	// listens on.
	DestinationAddresses []string `yaml:"destinationAddresses"`
	// DestinationFqdns (network rules) are exact names; a flow matches when
	// its destination IP is one airlock DNS resolved for such a name.
	DestinationFqdns []string `yaml:"destinationFqdns"`
	// DestinationPorts are ports ("123"), ranges ("1000-2000") or "*".
	// Required for network rules; a DNAT rule takes exactly one port.
	DestinationPorts []string `yaml:"destinationPorts"`
	// TargetFqdns (application rules) are exact names, "*.suffix" (one or
	// more labels under suffix, not suffix itself) or "*".
	TargetFqdns []string `yaml:"targetFqdns"`
	// FqdnTags (application rules) name built-in tags; see Tags.
	FqdnTags []string `yaml:"fqdnTags"`
	// TranslatedAddress (DNAT, required) is the IP address to forward to.
	TranslatedAddress string `yaml:"translatedAddress"`
	// TranslatedPort (DNAT, required) is the port to forward to, 1..65535.
	TranslatedPort string `yaml:"translatedPort"`
}

// CollectionType is the rule type of a collection.
type CollectionType string

// Collection types, in processing order.
const (
	TypeDNAT        CollectionType = "dnat"
	TypeNetwork     CollectionType = "network"
	TypeApplication CollectionType = "application"
)

// Action is what a matching rule of a collection does.
type Action string

// Actions.
const (
	ActionAllow Action = "allow"
	ActionDeny  Action = "deny"
)

// Priority bounds, as in Azure Firewall (100 = first, 65000 = last).
const (
	MinPriority = 100
	MaxPriority = 65000
)

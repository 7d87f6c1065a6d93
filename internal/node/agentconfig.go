package node

import (
	"fmt"
	"time"
)

// AgentConfig is node.agent: what `airlock node agent` (the long-lived
// agent a DaemonSet runs) serves and how often it checks the node.
type AgentConfig struct {
	// Listen is where the agent serves /healthz, /readyz and /metrics
	// (host:port). Default 127.0.0.1:9091; a DaemonSet on the host
	// network whose kubelet probes the node's address sets ":9091" or the
	// node's address. --listen overrides it.
	Listen string `yaml:"listen" config:"listen"`
	// Interval is how often the agent compares the node with what apply
	// wrote and repairs drift. Default 30s; at least 1s. --interval
	// overrides it.
	Interval time.Duration `yaml:"interval"`
}

// DefaultAgentListen and DefaultAgentInterval are node.agent's defaults.
const (
	DefaultAgentListen   = "127.0.0.1:9091"
	DefaultAgentInterval = 30 * time.Second
)

func (a *AgentConfig) setDefaults() {
	if a.Listen == "" {
		a.Listen = DefaultAgentListen
	}
	if a.Interval == 0 {
		a.Interval = DefaultAgentInterval
	}
}

func (a *AgentConfig) validate(report func(path, msg string)) {
	if a.Interval < time.Second {
		report("agent.interval", fmt.Sprintf("must be at least 1s (how often the node agent checks for drift), got %s", a.Interval))
	}
}

package cluster

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
)

// Config is the cluster section of the config file.
type Config struct {
	// Name is this replica's name in logs, metrics and its version record.
	// Default: the host name.
	Name string `yaml:"name"`
	// Redis is where replicas coordinate. Zero (no addresses): no Redis,
	// local coordination only (a single replica).
	Redis RedisConfig `yaml:"redis"`
	// Advertise is the base URL other replicas reach this replica's
	// registry at (http://10.0.0.4:5000): a replica waiting for this one's
	// blob fill streams it from there. Empty: no streaming between
	// replicas (a waiting replica reads the blob from storage once the
	// holder has stored it).
	Advertise string `yaml:"advertise"`
}

// RedisConfig says how to reach Redis.
type RedisConfig struct {
	// Address is one Redis, HOST:PORT. Empty and no Addresses: no Redis.
	Address string `yaml:"address"`
	// Addresses are HOST:PORT: with SentinelMaster the sentinels, or one
	// Redis (as Address). Empty: no Redis.
	Addresses []string `yaml:"addresses"`
	// SentinelMaster is the master name the sentinels serve; empty: the
	// single address is Redis itself.
	SentinelMaster string `yaml:"sentinelMaster"`
	// Username for Redis ACLs; empty: the default user.
	Username string `yaml:"username"`
	// PasswordEnv names the environment variable holding the password (the
	// password is never in the file). Empty: no password.
	PasswordEnv string `yaml:"passwordEnv"`
	// DB is the Redis database number; 0 is the default database.
	DB int `yaml:"db"`
	// TLS to Redis; off by default.
	TLS TLSConfig `yaml:"tls"`
	// KeyPrefix starts every key airlock writes. Default "airlock:".
	KeyPrefix string `yaml:"keyPrefix"`
}

// TLSConfig is TLS to Redis.
type TLSConfig struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs trusted for Redis; empty: the
	// system roots.
	CAFile string `yaml:"caFile"`
	// ServerName checked in Redis's certificate; empty: the address's host.
	ServerName string `yaml:"serverName"`
}

// DefaultKeyPrefix is RedisConfig.KeyPrefix's default.
const DefaultKeyPrefix = "airlock:"

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate reports every problem of c at its field path (relative to the
// cluster section).
func (c *Config) Validate(report func(path, msg string)) {
	if c.Advertise != "" {
		if msg := checkAdvertise(c.Advertise); msg != "" {
			report("advertise", msg)
		}
	}
	r := c.Redis
	if r.Address != "" && len(r.Addresses) > 0 {
		report("redis.address", "set redis.address (one Redis) or redis.addresses (sentinels), not both")
		return
	}
	for i, a := range r.addresses() {
		p := "redis.addresses[" + strconv.Itoa(i) + "]"
		if r.Address != "" {
			p = "redis.address"
		}
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			report(p, fmt.Sprintf("must be HOST:PORT, got %q", a))
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			report(p, fmt.Sprintf("port must be 1-65535, got %q", port))
		}
	}
	configured := r.Configured()
	if !configured && (r.SentinelMaster != "" || r.Username != "" || r.PasswordEnv != "" || r.TLS.Enabled) {
		report("redis.address", "must be set when other redis fields are (or remove them: no Redis means local coordination)")
	}
	if r.SentinelMaster == "" && len(r.Addresses) > 1 {
		report("redis.addresses", "several addresses are sentinels: set redis.sentinelMaster, or give one address")
	}
	if r.PasswordEnv != "" && !envName.MatchString(r.PasswordEnv) {
		report("redis.passwordEnv", fmt.Sprintf("must be an environment variable name (the password itself never goes in the file), got %q", r.PasswordEnv))
	}
	if r.DB < 0 {
		report("redis.db", fmt.Sprintf("must not be negative, got %d", r.DB))
	}
	if !r.TLS.Enabled && (r.TLS.CAFile != "" || r.TLS.ServerName != "") {
		report("redis.tls.enabled", "must be true when redis.tls.caFile or redis.tls.serverName is set")
	}
}

// Configured reports whether Redis is set (address or addresses): several
// replicas coordinate through it. False: one replica, local coordination.
func (r *RedisConfig) Configured() bool { return len(r.addresses()) > 0 }

// addresses is where Redis is: Address, or Addresses.
func (r *RedisConfig) addresses() []string {
	if r.Address != "" {
		return []string{r.Address}
	}
	return r.Addresses
}

// checkAdvertise returns what is wrong with an advertise URL, or "".
func checkAdvertise(a string) string {
	u, err := url.Parse(a)
	switch {
	case err != nil:
		return fmt.Sprintf("must be a URL like http://10.0.0.4:5000, got %q: %v", a, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("must start with http:// or https://, got %q", a)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Sprintf("must name a host, got %q", a)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.User != nil:
		return fmt.Sprintf("must be scheme://host[:port] only (no path, query or user), got %q", a)
	}
	return ""
}

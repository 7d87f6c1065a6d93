package admin

import (
	"strings"
	"testing"

	"github.com/airlockdev/airlock/internal/basicauth"
)

func TestConfigValidate(t *testing.T) {
	var c Config
	c.SetDefaults()
	if strings.Join(c.Open, ",") != "metrics,healthz,readyz" {
		t.Errorf("default open = %v, want metrics, healthz, readyz", c.Open)
	}
	c.Open = append(c.Open, "console")
	c.Users = append(c.Users, basicauth.User{Name: "ops", PasswordHash: "plain"})
	var got []string
	c.Validate(func(path, msg string) { got = append(got, path+": "+msg) })
	if len(got) != 2 || !strings.HasPrefix(got[0], "users[0].passwordHash: must be a bcrypt hash") || !strings.HasPrefix(got[1], `open[3]: unknown endpoint "console": use healthz, metrics, readyz`) {
		t.Errorf("Validate = %q, want the hash and the open name", got)
	}
	for _, tt := range []struct {
		cfg  Config
		warn bool
	}{
		{Config{Listen: "0.0.0.0:9090"}, true},
		{Config{Listen: "127.0.0.1:9090"}, false},
		{Config{Listen: ""}, false},
		{Config{Listen: ":9090", Users: c.Users}, false},
	} {
		if w := tt.cfg.Warnings(); (len(w) > 0) != tt.warn {
			t.Errorf("Warnings(%+v) = %q, want a warning: %v", tt.cfg, w, tt.warn)
		}
	}
}

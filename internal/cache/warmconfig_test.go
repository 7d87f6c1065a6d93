package cache

import (
	"strings"
	"testing"
	"time"
)

func TestWarmConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  WarmConfig
		want string // "" valid; else a path reported
	}{
		{"off", WarmConfig{}, ""},
		{"on", WarmConfig{Every: 6 * time.Hour, Images: []string{"mcr.microsoft.com/oss/kubernetes/pause:3.6"}, Platform: "linux/amd64"}, ""},
		{"too often", WarmConfig{Every: time.Second, Images: []string{"mcr.microsoft.com/a:1"}}, "every"},
		{"negative", WarmConfig{Every: -time.Hour}, "every"},
		{"no images", WarmConfig{Every: time.Hour}, "images"},
		{"images without every", WarmConfig{Images: []string{"mcr.microsoft.com/a:1"}}, "every"},
		{"bad image", WarmConfig{Every: time.Hour, Images: []string{"mcr.microsoft.com/a:1", "not a ref"}}, "images[1]"},
		{"bad platform", WarmConfig{Every: time.Hour, Images: []string{"mcr.microsoft.com/a:1"}, Platform: "linux"}, "platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tc.cfg.Validate(func(p, m string) {
				got = append(got, p)
				if m == "" {
					t.Errorf("%s: empty message", p)
				}
			})
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("valid config reported %v", got)
			case tc.want != "" && (len(got) == 0 || !strings.HasPrefix(got[0], tc.want)):
				t.Errorf("reported %v, want %s", got, tc.want)
			}
		})
	}
}

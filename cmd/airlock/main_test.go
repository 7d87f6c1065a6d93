package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestEveryCommandHasHelpWithExample(t *testing.T) {
	for name := range commands() {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(append(strings.Fields(name), "--help"), &out, &errOut)
			help := out.String() + errOut.String()
			if code != exitOK {
				t.Errorf("airlock %s --help exit = %d, want 0", name, code)
			}
			if !strings.Contains(help, "Example") || !strings.Contains(help, "airlock "+name) {
				t.Errorf("airlock %s --help = %q, want a usage with an example", name, help)
			}
			if !strings.Contains(help, "-config") {
				t.Errorf("airlock %s --help lists no --config flag", name)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{nil, exitUsage},
		{[]string{"nope"}, exitUsage},
		{[]string{"cache"}, exitUsage},
		{[]string{"serve", "--bogus"}, exitUsage},
		{[]string{"config", "check", "a", "b"}, exitUsage},
		{[]string{"--help"}, exitOK},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if got := run(tt.args, &out, &errOut); got != tt.want {
			t.Errorf("run(%q) = %d, want %d (stderr %q)", tt.args, got, tt.want, errOut.String())
		}
	}
}

func TestConfigCheckReportsPositions(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/bad.yaml"
	writeFile(t, path, "version: 1\nregistry:\n  listen: nope\n  colour: red\n")
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "check", path}, &out, &errOut); code != exitFinding {
		t.Fatalf("config check of a bad file = %d, want %d", code, exitFinding)
	}
	for _, want := range []string{path + ":3:3: registry.listen:", path + ":4:3: registry.colour: unknown field"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config check output %q lacks %q", out.String(), want)
		}
	}
}

//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// airlockBin is the binary under test; airlockBuildErr is why there is none.
var (
	airlockBin      string
	airlockBuildErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "airlock-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	airlockBin, airlockBuildErr = buildAirlock(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildAirlock returns $AIRLOCK_BIN when set, else builds ./cmd/airlock of
// this repository into dir.
func buildAirlock(dir string) (string, error) {
	if p := os.Getenv("AIRLOCK_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("AIRLOCK_BIN: %w", err)
		}
		return p, nil
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	out := filepath.Join(dir, "airlock")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/airlock")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/airlock: %w\n%s", err, b)
	}
	return out, nil
}

// needAirlock fails the test when the binary could not be built.
func needAirlock(t testing.TB) string {
	t.Helper()
	if airlockBuildErr != nil {
		t.Fatalf("airlock binary: %v", airlockBuildErr)
	}
	return airlockBin
}

package main

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/config"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startServe runs serve(cfg) in the background; the returned stop ends it
// and fails the test if serve returned an error.
func startServe(t *testing.T, cfg *config.File, log *slog.Logger) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, "", log, new(slog.LevelVar), 5*time.Second, 0) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}

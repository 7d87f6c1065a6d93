package main

import (
	"fmt"
	"io"
	"log/slog"
)

// newLogger builds the process logger: JSON (default) or text on w.
func newLogger(w io.Writer, format, level string) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json", "":
		return slog.New(slog.NewJSONHandler(w, opts)), lv, nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), lv, nil
	}
	return nil, nil, fmt.Errorf("log format %q: use json or text", format)
}

package admin

import (
	"embed"
	"io/fs"
)

// consoleFiles holds the web console: plain HTML, CSS and JavaScript
// modules, no build step and nothing loaded from outside (gateway hosts
// and nodes have no internet).
//
//go:embed console
var consoleFiles embed.FS

// ConsoleFS is the console's files rooted at console/: index.html and the
// assets the page loads as /ui/NAME.
var ConsoleFS fs.FS = mustSub(consoleFiles, "console")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic("admin: embedded console: " + err.Error()) // a build error: the directory is embedded above
	}
	return sub
}

package admin

import (
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The references a console file makes to other files: index.html's
// src/href attributes, JavaScript imports, CSS url() and @import.
var (
	attrRef   = regexp.MustCompile(`\b(?:src|href)="([^"#]*)"`)
	importRef = regexp.MustCompile(`(?m)^\s*import\b[^'"]*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)`)
	cssRef    = regexp.MustCompile(`url\(\s*['"]?([^'")]+)|@import\s+['"]([^'"]+)`)
)

// TestConsoleFSSelfContained: every file the console's page and scripts
// load is embedded, and none comes from another origin (gateway hosts have
// no internet: no CDN, no web fonts).
func TestConsoleFSSelfContained(t *testing.T) {
	if _, err := fs.Stat(ConsoleFS, "index.html"); err != nil {
		t.Fatalf("ConsoleFS has no index.html: %v", err)
	}
	var files []string
	err := fs.WalkDir(ConsoleFS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		b, err := fs.ReadFile(ConsoleFS, name)
		if err != nil {
			t.Fatal(err)
		}
		var refs []string
		res := map[string]*regexp.Regexp{".html": attrRef, ".js": importRef, ".css": cssRef}
		re := res[path.Ext(name)]
		if re == nil {
			t.Errorf("%s: the console holds only .html, .js and .css files", name)
			continue
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			for _, r := range m[1:] {
				if r != "" {
					refs = append(refs, r)
				}
			}
		}
		// the patterns find what they must
		for file, want := range map[string]string{"index.html": "/ui/app.js", "app.js": "./overview.js"} {
			if name == file && !slices.Contains(refs, want) {
				t.Errorf("%s refers to %q, want %s among them", name, refs, want)
			}
		}
		for _, ref := range refs {
			switch {
			case strings.HasPrefix(ref, "data:"):
				// inline (the empty favicon): nothing is fetched
			case strings.Contains(ref, "//"):
				t.Errorf("%s loads %q from another origin", name, ref)
			case strings.HasPrefix(ref, "/ui/"):
				if _, err := fs.Stat(ConsoleFS, strings.TrimPrefix(ref, "/ui/")); err != nil {
					t.Errorf("%s loads %q, which is not embedded", name, ref)
				}
			case strings.HasPrefix(ref, "./"):
				if _, err := fs.Stat(ConsoleFS, path.Join(path.Dir(name), ref)); err != nil {
					t.Errorf("%s imports %q, which is not embedded", name, ref)
				}
			case strings.HasPrefix(ref, "#"):
				// a page of the console
			default:
				t.Errorf("%s refers to %q: want /ui/NAME, ./NAME.js or #/page", name, ref)
			}
		}
	}
}

// TestConsoleNoHTMLFromData: the scripts never parse strings as HTML
// (records carry names clients chose); they build text nodes.
func TestConsoleNoHTMLFromData(t *testing.T) {
	bad := regexp.MustCompile(`\.(?:innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\(`)
	err := fs.WalkDir(ConsoleFS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, err := fs.ReadFile(ConsoleFS, p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if bad.MatchString(line) {
				t.Errorf("%s:%d parses a string as HTML or code: %s", p, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

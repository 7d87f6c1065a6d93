package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// parseDeadline is far above the milliseconds any input up to the fuzzer's
// sizes takes, even on a loaded machine.
const parseDeadline = 10 * time.Second

// FuzzParse checks that any bytes give either a File or a non-empty
// *Errors whose lines all read airlock.yaml:LINE:COL: …, without panicking.
// An input that takes longer than parseDeadline fails (and is saved).
func FuzzParse(f *testing.F) {
	for _, name := range []string{"full.yaml", "minimal.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(Default())
	for _, s := range []string{
		"",
		"version: 1\nregistry: &r {listen: ':5000'}\nadmin: {<<: *r}\n",
		"version: 1\nregistry:\n  users: [{name: a, passwordHash: x}, {name: a}]\n  uploadTTL: 10\n",
		"version: !!str 1\nlog: [a]\n",
		"a: &a [1,2]\nb: &b [*a,*a]\nc: [*b,*b]\n",
		"version: 1\n---\nversion: 1\n",
		"version: 0x1\nregistry: {anonymousPull: ~, tls: {certFile: x}}\n",
		"{\"version\": 1, \"registry\": {\"listen\": \"[::1]:0\"}}",
		"version: 1\r\nlog:\r\n  level: debug\r\n",
		"\xef\xbb\xbfversion: 1\n",
		"version: 1\nregistry: {users: &u [{name: a, <<: *u}]}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		type result struct {
			file *File
			err  error
		}
		done := make(chan result, 1)
		go func() {
			file, err := Parse("airlock.yaml", data)
			done <- result{file, err}
		}()
		var file *File
		var err error
		select {
		case r := <-done:
			file, err = r.file, r.err
		case <-time.After(parseDeadline):
			t.Fatalf("Parse(%d bytes) still running after %v", len(data), parseDeadline)
		}
		if err == nil {
			if file == nil {
				t.Fatal("Parse = nil, nil")
			}
			return
		}
		if file != nil {
			t.Fatalf("Parse returned a File and an error: %v", err)
		}
		var errs *Errors
		if !errors.As(err, &errs) || len(*errs) == 0 {
			t.Fatalf("Parse error = %v (%T), want a non-empty *Errors", err, err)
		}
		for _, e := range *errs {
			if e.File != "airlock.yaml" || e.Line < 1 || e.Col < 1 || e.Msg == "" {
				t.Fatalf("malformed error %+v", e)
			}
			if prefix := fmt.Sprintf("airlock.yaml:%d:%d: ", e.Line, e.Col); !strings.HasPrefix(e.String(), prefix) {
				t.Fatalf("error %q does not start with %q", e.String(), prefix)
			}
		}
	})
}

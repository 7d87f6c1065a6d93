package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// cache ls asks the admin listener with the credentials given by
// --user/--password-env, and says what to give when it answers 401.
func TestCacheLsCredentials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ops" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="airlock"`)
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"credentials needed: give an admin.users name and password"}`))
			return
		}
		if r.URL.Path != "/cache" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(`[{"repository":"docker.io/library/nginx","upstream":"docker.io/library/nginx","tags":[],"blobs":3,"bytes":2048}]`))
	}))
	defer srv.Close()

	var out, errb bytes.Buffer
	if code := runCacheLs([]string{"--admin", srv.URL}, &out, &errb); code != exitFinding {
		t.Fatalf("without credentials: exit %d, want %d; stderr %s", code, exitFinding, errb.String())
	}
	if !strings.Contains(errb.String(), "401") || !strings.Contains(errb.String(), "--user NAME --password-env VAR") {
		t.Errorf("without credentials, stderr does not say what to give: %s", errb.String())
	}

	out.Reset()
	errb.Reset()
	if code := runCacheLs([]string{"--admin", srv.URL, "--user", "ops"}, &out, &errb); code != exitUsage {
		t.Fatalf("--user without --password-env: exit %d, want %d", code, exitUsage)
	}

	t.Setenv("AIRLOCK_TEST_ADMIN_PW", "s3cret")
	out.Reset()
	errb.Reset()
	if code := runCacheLs([]string{"--admin", srv.URL, "--user", "ops", "--password-env", "AIRLOCK_TEST_ADMIN_PW"}, &out, &errb); code != exitOK {
		t.Fatalf("with credentials: exit %d; stderr %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "docker.io/library/nginx") {
		t.Errorf("listing lacks the repository:\n%s", out.String())
	}
}

package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// adminAuth is the --user and --password-env pair of the commands that ask
// a running airlock's admin listener (policy learn and hits --server, cache
// ls): HTTP Basic credentials of an admin.users entry, needed when
// admin.listen is not loopback. The password comes from the environment,
// never from a flag.
type adminAuth struct {
	user, passwordEnv *string
}

func addAdminAuthFlags(fs *flag.FlagSet) adminAuth {
	return adminAuth{
		user:        fs.String("user", "", "admin user `NAME` (HTTP Basic; needed when admin.listen is not loopback)"),
		passwordEnv: fs.String("password-env", "", "environment `VAR` holding --user's password"),
	}
}

// check returns a usage message, or "".
func (a adminAuth) check() string {
	switch {
	case *a.user != "" && *a.passwordEnv == "":
		return "--user needs --password-env VAR (the password is never a flag)"
	case *a.user != "" && os.Getenv(*a.passwordEnv) == "":
		return fmt.Sprintf("--password-env %s: the variable is empty or unset", *a.passwordEnv)
	}
	return ""
}

// adminError is a non-200 answer of the admin listener.
type adminError struct {
	status int
	msg    string
}

func (e *adminError) Error() string { return e.msg }

// get sends GET target with the credentials and returns the body of a 200
// answer; any other answer is an *adminError carrying the server's JSON
// error message and, for a 401, what to give.
func (a adminAuth) get(target string, timeout time.Duration) (io.ReadCloser, error) {
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	if *a.user != "" {
		req.SetBasicAuth(*a.user, os.Getenv(*a.passwordEnv))
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w (is airlock serving admin.listen there?)", err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp.Body, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(body))
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	hint := ""
	if resp.StatusCode == http.StatusUnauthorized {
		hint = " (give --user NAME --password-env VAR of an admin.users entry)"
	}
	return nil, &adminError{status: resp.StatusCode, msg: fmt.Sprintf("GET %s: %s: %s%s", target, resp.Status, msg, hint)}
}

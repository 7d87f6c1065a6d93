package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// azureVersion is the Blob service API version mkcontainer asks for.
const azureVersion = "2021-12-02"

func runMkContainer(args []string) error {
	fs := flag.NewFlagSet("mkcontainer", flag.ExitOnError)
	endpoint := fs.String("endpoint", "", "blob service URL, path style (http://127.0.0.1:PORT/ACCOUNT)")
	account := fs.String("account", "", "storage account name")
	key := fs.String("key", "", "storage account key (base64)")
	name := fs.String("name", "", "container to create")
	_ = fs.Parse(args)
	if *endpoint == "" || *account == "" || *key == "" || *name == "" {
		return fmt.Errorf("-endpoint, -account, -key and -name are required")
	}
	secret, err := base64.StdEncoding.DecodeString(*key)
	if err != nil {
		return fmt.Errorf("-key is not base64: %w", err)
	}
	u, err := url.Parse(strings.TrimRight(*endpoint, "/") + "/" + *name + "?restype=container")
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodPut, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	req.Header.Set("x-ms-version", azureVersion)
	req.Header.Set("Authorization", "SharedKey "+*account+":"+sharedKey(req, *account, secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("create container %s: %w", *name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusConflict {
		return fmt.Errorf("create container %s: status %d: %s", *name, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// sharedKey signs a body-less request carrying only x-ms-date and
// x-ms-version headers, as the Blob service's Shared Key scheme says: the
// verb, eleven empty standard headers, the x-ms- headers, and the
// resource (/ACCOUNT + the URL path, then each query key:value).
func sharedKey(req *http.Request, account string, secret []byte) string {
	var b strings.Builder
	b.WriteString(req.Method + "\n")
	b.WriteString(strings.Repeat("\n", 11))
	b.WriteString("x-ms-date:" + req.Header.Get("x-ms-date") + "\n")
	b.WriteString("x-ms-version:" + req.Header.Get("x-ms-version") + "\n")
	b.WriteString("/" + account + req.URL.EscapedPath())
	for k, v := range req.URL.Query() { // one key here: restype
		b.WriteString("\n" + strings.ToLower(k) + ":" + strings.Join(v, ","))
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

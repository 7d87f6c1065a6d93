package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name, method, target string
		header               map[string]string
		want                 string
	}{
		{name: "azure get", method: "GET", target: "/devstoreaccount1/c/blob", header: map[string]string{"x-ms-version": "2021-12-02"}, want: "get"},
		{name: "azure ranged get", method: "GET", target: "/devstoreaccount1/c/blob", header: map[string]string{"x-ms-version": "v", "x-ms-range": "bytes=0-9"}, want: "get-range"},
		{name: "azure properties", method: "HEAD", target: "/devstoreaccount1/c/blob", header: map[string]string{"x-ms-date": "d"}, want: "head"},
		{name: "azure put block", method: "PUT", target: "/devstoreaccount1/c/blob?comp=block&blockid=AA", header: map[string]string{"x-ms-version": "v"}, want: "put-part"},
		{name: "azure block list", method: "PUT", target: "/devstoreaccount1/c/blob?comp=blocklist", header: map[string]string{"x-ms-version": "v"}, want: "commit"},
		{name: "azure copy", method: "PUT", target: "/devstoreaccount1/c/blob", header: map[string]string{"x-ms-version": "v", "x-ms-copy-source": "http://x"}, want: "copy"},
		{name: "azure list", method: "GET", target: "/devstoreaccount1/c?restype=container&comp=list", header: map[string]string{"x-ms-version": "v"}, want: "list"},
		{name: "azure create container", method: "PUT", target: "/devstoreaccount1/c?restype=container", header: map[string]string{"x-ms-version": "v"}, want: "container"},
		{name: "s3 get", method: "GET", target: "/b/k/x", want: "get"},
		{name: "s3 ranged get", method: "GET", target: "/b/k", header: map[string]string{"Range": "bytes=0-"}, want: "get-range"},
		{name: "s3 list", method: "GET", target: "/b?list-type=2&prefix=k", want: "list"},
		{name: "s3 upload part", method: "PUT", target: "/b/k?partNumber=1&uploadId=u", want: "put-part"},
		{name: "s3 create multipart", method: "POST", target: "/b/k?uploads", want: "commit"},
		{name: "s3 copy", method: "PUT", target: "/b/k", header: map[string]string{"x-amz-copy-source": "/b/j"}, want: "copy"},
		{name: "s3 create bucket", method: "PUT", target: "/b", want: "container"},
		{name: "s3 delete", method: "DELETE", target: "/b/k", want: "delete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			if got := classify(r); got != tc.want {
				t.Errorf("classify(%s %s) = %q, want %q", tc.method, tc.target, got, tc.want)
			}
		})
	}
}

// TestProxyKeepsRequest checks what signatures depend on: the storage
// server sees the client's Host, path, query and headers unchanged.
func TestProxyKeepsRequest(t *testing.T) {
	type seen struct{ host, uri, auth, body string }
	got := make(chan seen, 1)
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Host, r.RequestURI, r.Header.Get("Authorization"), string(b)}
		io.WriteString(w, "stored")
	}))
	defer storage.Close()
	target, _ := url.Parse(storage.URL)
	c := newCounter()
	proxy := httptest.NewServer(newHandler(target, c))
	defer proxy.Close()

	req, _ := http.NewRequest(http.MethodPut, proxy.URL+"/b/k//x?partNumber=1&uploadId=u", strings.NewReader("part"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 sig")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s := <-got
	want := seen{host: strings.TrimPrefix(proxy.URL, "http://"), uri: "/b/k//x?partNumber=1&uploadId=u", auth: "AWS4-HMAC-SHA256 sig", body: "part"}
	if s != want {
		t.Errorf("storage saw %+v, want %+v", s, want)
	}
	n := c.snapshot(true)
	if n.Requests != 1 || n.ByOp["put-part"] != 1 || n.BytesIn != 4 || n.BytesOut != 6 {
		t.Errorf("counts = %+v, want 1 put-part, 4 bytes in, 6 out", n)
	}
	if n := c.snapshot(false); n.Requests != 0 {
		t.Errorf("counts after reset = %+v, want zero", n)
	}
}

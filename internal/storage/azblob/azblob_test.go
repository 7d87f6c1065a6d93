package azblob

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlockdev/airlock/internal/storage"
	"github.com/airlockdev/airlock/internal/storage/drivertest"
	"github.com/airlockdev/airlock/internal/testkit/azuritetest"
)

var ctx = context.Background()

// open opens rawURL with the development account's key in the environment.
func open(t testing.TB, rawURL string, obs storage.Observer) (*Driver, error) {
	t.Helper()
	azuritetest.SetEnv(t)
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return Open(ctx, u, Options{Observer: obs})
}

func mustOpen(t testing.TB, rawURL string, obs storage.Observer) *Driver {
	t.Helper()
	d, err := open(t, rawURL, obs)
	if err != nil {
		t.Fatalf("Open(%s) = %v", rawURL, err)
	}
	return d
}

func TestDriver(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.InMemory())
	drivertest.Run(t, func(t *testing.T) storage.Driver {
		return mustOpen(t, az.NewContainer(t), nil)
	})
}

// recorder is an Observer that keeps the operations it saw.
type recorder struct {
	mu  sync.Mutex
	ops []string
}

func (r *recorder) observe(op, result string, sent, received int64, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op+":"+result)
}

// take returns the operations seen since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops = nil
	return ops
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestAzurite(t *testing.T) {
	az := azuritetest.Start(t, azuritetest.InMemory())

	t.Run("MissingContainer", func(t *testing.T) {
		name := azuritetest.ContainerName(t)
		noCreate := strings.Replace(az.URL(name), "&create=true", "", 1)
		_, err := open(t, noCreate, nil)
		if err == nil || !strings.Contains(err.Error(), `container "`+name+`" does not exist`) || !strings.Contains(err.Error(), "?create=true") {
			t.Fatalf("Open(missing container) = %v, want an error naming %s and ?create=true", err, name)
		}
		d := mustOpen(t, az.URL(name), nil)
		if err := d.Ping(ctx); err != nil {
			t.Fatalf("Ping after create=true = %v", err)
		}
		if _, err := open(t, noCreate, nil); err != nil {
			t.Fatalf("Open(created container) without create=true = %v", err)
		}
	})

	t.Run("WriterRequests", func(t *testing.T) {
		var rec recorder
		d := mustOpen(t, az.NewContainer(t), rec.observe)
		d.blockSize = 1 << 20 // small blocks keep the test quick; the paths are the same
		rec.take()

		w, _ := d.NewWriter(ctx, "small")
		w.Write(random(1 << 20)) // exactly one block still fits the single-request path
		if err := w.Commit(); err != nil {
			t.Fatalf("Commit(small) = %v", err)
		}
		if got, want := rec.take(), []string{"PutBlob:ok"}; !slices.Equal(got, want) {
			t.Errorf("small writer sent %q, want %q", got, want)
		}

		data := random(3<<20 + 5)
		w, _ = d.NewWriter(ctx, "large")
		w.Write(data)
		if err := w.Commit(); err != nil {
			t.Fatalf("Commit(large) = %v", err)
		}
		want := []string{"PutBlock:ok", "PutBlock:ok", "PutBlock:ok", "PutBlock:ok", "PutBlockList:ok"}
		if got := rec.take(); !slices.Equal(got, want) {
			t.Errorf("large writer sent %q, want %q", got, want)
		}
		r, _ := d.Open(ctx, "large", -1)
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("large object read back: %d bytes, %v; want %d bytes", len(got), err, len(data))
		}
	})

	t.Run("Get", func(t *testing.T) {
		var rec recorder
		d := mustOpen(t, az.NewContainer(t), rec.observe)
		data := []byte("small object")
		d.Put(ctx, "obj", data)
		rec.take()
		got, err := storage.ReadSmall(ctx, d, "obj", int64(len(data)))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("ReadSmall = %q, %v, want %q", got, err, data)
		}
		if ops, want := rec.take(), []string{"GetBlob:ok"}; !slices.Equal(ops, want) {
			t.Errorf("ReadSmall sent %q, want %q", ops, want)
		}
		if _, err := d.Get(ctx, "obj", int64(len(data)-1)); err == nil || !strings.Contains(err.Error(), "limit") {
			t.Errorf("Get over the limit = %v, want an error", err)
		}
		if _, err := d.Get(ctx, "missing", 10); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Get(missing) = %v, want fs.ErrNotExist", err)
		}
	})

	t.Run("UnfinishedWriters", func(t *testing.T) {
		d := mustOpen(t, az.NewContainer(t), nil)
		d.blockSize = 1 << 20
		aborted, _ := d.NewWriter(ctx, "aborted")
		aborted.Write(random(3 << 20))
		aborted.Abort()
		dropped, _ := d.NewWriter(ctx, "dropped")
		dropped.Write(random(3 << 20))
		// dropped is never committed nor aborted, as after a crash.
		for _, name := range []string{"aborted", "dropped"} {
			if _, err := d.Stat(ctx, name); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Stat(%s) = %v, want fs.ErrNotExist", name, err)
			}
		}
		var names []string
		d.List(ctx, "", func(o storage.ObjectInfo) error { names = append(names, o.Name); return nil })
		if len(names) != 0 {
			t.Errorf("List = %q, want nothing", names)
		}
	})

	t.Run("CommitRaced", func(t *testing.T) {
		d := mustOpen(t, az.NewContainer(t), nil)
		d.blockSize = 1 << 20
		slow, _ := d.NewWriter(ctx, "obj")
		slow.Write(random(2 << 20))
		if err := d.Put(ctx, "obj", []byte("winner")); err != nil {
			t.Fatal(err)
		}
		err := slow.Commit()
		// Azure discards slow's uncommitted blocks when "winner" is
		// committed; Azurite may keep them, and then slow simply wins.
		if err != nil && !errors.Is(err, storage.ErrCommitRaced) {
			t.Errorf("Commit after another writer's = %v, want nil or storage.ErrCommitRaced", err)
		}
		t.Logf("Commit after another writer's = %v", err)
	})

	t.Run("SignedURL", func(t *testing.T) {
		d := mustOpen(t, az.NewContainer(t), nil)
		data := []byte("signed content")
		if err := d.Put(ctx, "dir/obj", data); err != nil {
			t.Fatal(err)
		}
		signed, err := d.SignedURL(ctx, "dir/obj", time.Minute)
		if err != nil {
			t.Fatalf("SignedURL = %v", err)
		}
		resp, err := http.Get(signed)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
			t.Errorf("GET signed URL = %d %q, want 200 %q", resp.StatusCode, got, data)
		}
		// Read-only: the same signature does not write.
		req, _ := http.NewRequest(http.MethodPut, signed, strings.NewReader("x"))
		req.Header.Set("x-ms-blob-type", "BlockBlob")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("PUT with the signed URL = %d, want refused", resp.StatusCode)
		}
		unsigned := strings.Split(signed, "?")[0]
		resp, err = http.Get(unsigned)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("GET without the signature = 200, want refused (the container is private)")
		}
	})
}

// An unreachable storage fails every operation promptly with
// ErrStorageUnavailable naming the storage, and works again once back.
func TestUnavailable(t *testing.T) {
	az := azuritetest.Start(t)
	d := mustOpen(t, az.NewContainer(t), nil)
	if err := d.Put(ctx, "kept", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	az.Stop()
	start := time.Now()
	defer func() { t.Logf("the failing operations took %v", time.Since(start)) }()

	ctx, cancel := context.WithTimeout(ctx, time.Minute) // a bound against hangs, not a timing assertion
	defer cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrStorageUnavailable) || !strings.Contains(err.Error(), d.String()) {
			t.Errorf("%s with the storage down = %v, want storage.ErrStorageUnavailable naming %s", op, err, d)
		}
	}
	_, err := d.Stat(ctx, "kept")
	check("Stat", err)
	check("Put", d.Put(ctx, "new", []byte("x")))
	check("Create", d.Create(ctx, "new", []byte("x")))
	check("Delete", d.Delete(ctx, "kept"))
	check("List", d.List(ctx, "", func(storage.ObjectInfo) error { return nil }))
	check("Ping", d.Ping(ctx))
	r, _ := d.Open(ctx, "kept", 4)
	_, err = r.Read(make([]byte, 4))
	r.Close()
	check("Read", err)
	w, _ := d.NewWriter(ctx, "new")
	w.Write([]byte("x"))
	check("Commit", w.Commit())
	_, err = open(t, az.NewContainer(t), nil)
	if !errors.Is(err, storage.ErrStorageUnavailable) || !strings.Contains(err.Error(), az.Endpoint) {
		t.Errorf("Open with the storage down = %v, want storage.ErrStorageUnavailable naming %s", err, az.Endpoint)
	}

	az.Restart()
	if info, err := d.Stat(ctx, "kept"); err != nil || info.Size != 4 {
		t.Errorf("Stat after restart = %+v, %v, want the 4-byte object", info, err)
	}
}

func TestParseConfig(t *testing.T) {
	const key = "a2V5"
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name    string
		url     string
		env     func(string) string
		want    config
		wantErr string
	}{{
		name: "account and key",
		url:  "azblob://airlock",
		env:  env(envAccount, "acct", envKey, key),
		want: config{container: "airlock", serviceURL: "https://acct.blob.core.windows.net", cred: credSharedKey, account: "acct", key: key},
	}, {
		name: "azurite endpoint and create",
		url:  "azblob://airlock?endpoint=http://127.0.0.1:10000/devstoreaccount1/&create=true",
		env:  env(envAccount, "devstoreaccount1", envKey, key),
		want: config{container: "airlock", serviceURL: "http://127.0.0.1:10000/devstoreaccount1", endpoint: "http://127.0.0.1:10000/devstoreaccount1", create: true, cred: credSharedKey, account: "devstoreaccount1", key: key},
	}, {
		name: "connection string wins over account and key",
		url:  "azblob://airlock",
		env:  env(envConnectionString, "DefaultEndpointsProtocol=https;AccountName=cs;AccountKey="+key+";EndpointSuffix=core.chinacloudapi.cn", envAccount, "acct", envKey, "other"),
		want: config{container: "airlock", serviceURL: "https://cs.blob.core.chinacloudapi.cn", cred: credSharedKey, account: "cs", key: key},
	}, {
		name: "connection string with blob endpoint",
		url:  "azblob://airlock",
		env:  env(envConnectionString, "AccountName=devstoreaccount1;AccountKey="+key+";BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;"),
		want: config{container: "airlock", serviceURL: "http://127.0.0.1:1/devstoreaccount1", cred: credSharedKey, account: "devstoreaccount1", key: key},
	}, {
		name: "connection string with SAS",
		url:  "azblob://airlock",
		env:  env(envConnectionString, "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=1&sig=x"),
		want: config{container: "airlock", serviceURL: "https://a.blob.core.windows.net", cred: credSAS, sas: "sv=1&sig=x"},
	}, {
		name: "default credential for the account",
		url:  "azblob://airlock",
		env:  env(envAccount, "acct"),
		want: config{container: "airlock", serviceURL: "https://acct.blob.core.windows.net", cred: credDefault, account: "acct"},
	}, {
		name: "default credential for an endpoint",
		url:  "azblob://airlock?endpoint=https://acct.blob.core.usgovcloudapi.net",
		env:  env(),
		want: config{container: "airlock", serviceURL: "https://acct.blob.core.usgovcloudapi.net", endpoint: "https://acct.blob.core.usgovcloudapi.net", cred: credDefault},
	},
		{name: "no account", url: "azblob://airlock", env: env(), wantErr: "no storage account"},
		{name: "key without account", url: "azblob://airlock", env: env(envKey, key), wantErr: "AZURE_STORAGE_ACCOUNT is not"},
		{name: "unknown parameter", url: "azblob://airlock?region=x", env: env(envAccount, "a"), wantErr: `unknown parameter "region" (accepted: endpoint, create)`},
		{name: "wrong scheme", url: "s3://airlock", env: env(envAccount, "a"), wantErr: "want azblob://"},
		{name: "bad container", url: "azblob://Air_lock", env: env(envAccount, "a"), wantErr: "container name"},
		{name: "path", url: "azblob://airlock/sub", env: env(envAccount, "a"), wantErr: "path is not supported"},
		{name: "credentials in URL", url: "azblob://u:p@airlock", env: env(envAccount, "a"), wantErr: "do not belong in the URL"},
		{name: "bad create", url: "azblob://airlock?create=yes", env: env(envAccount, "a"), wantErr: "want true or false"},
		{name: "bad endpoint", url: "azblob://airlock?endpoint=ftp://x", env: env(envAccount, "a"), wantErr: "endpoint="},
		{name: "bad connection string", url: "azblob://airlock", env: env(envConnectionString, "AccountName=a"), wantErr: "neither AccountKey nor SharedAccessSignature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseConfig(u, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseConfig(%s) = %v, want an error containing %q", tc.url, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig(%s) = %v", tc.url, err)
			}
			if got != tc.want {
				t.Errorf("parseConfig(%s) =\n%+v, want\n%+v", tc.url, got, tc.want)
			}
			if s := got.String(); strings.Contains(s, key) || strings.Contains(s, "sig=") || !strings.HasPrefix(s, "azblob://airlock") {
				t.Errorf("String() = %q, want azblob://airlock without credentials", s)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	for _, name := range []string{"a", "blobs/sha256/ab/cd", "repos/x.y/_manifests/tags/v1"} {
		if err := checkName(name); err != nil {
			t.Errorf("checkName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "../x", "/a", "a/", "a//b", "./a", "a/./b", "a/../b", strings.Repeat("x", 1025)} {
		if err := checkName(name); err == nil {
			t.Errorf("checkName(%q) = nil, want an error", name)
		}
	}
}

// BenchmarkWriteRead writes a 64 MiB object through a writer and reads it
// back, per block size and blocks in flight (docs/dependencies.md):
//
//	AIRLOCK_REQUIRE_TOOLS=1 go test -run '^$' -bench WriteRead -benchtime 5x ./internal/storage/azblob/
func BenchmarkWriteRead(b *testing.B) {
	az := azuritetest.Start(b, azuritetest.InMemory())
	data := random(64 << 20)
	for _, bs := range []int{4 << 20, 8 << 20} {
		for _, inFlight := range []int{1, 2} {
			b.Run(fmt.Sprintf("block=%dMiB/inflight=%d", bs>>20, inFlight), func(b *testing.B) {
				d := mustOpen(b, az.NewContainer(b), nil)
				d.blockSize, d.inFlight = bs, inFlight
				b.SetBytes(int64(len(data)))
				var writing, reading time.Duration
				for i := range b.N {
					start := time.Now()
					name := fmt.Sprintf("obj%d", i)
					w, _ := d.NewWriter(ctx, name)
					for rest := data; len(rest) > 0; {
						n := min(len(rest), 256<<10) // as a network stream gives them
						w.Write(rest[:n])
						rest = rest[n:]
					}
					if err := w.Commit(); err != nil {
						b.Fatal(err)
					}
					writing += time.Since(start)
					start = time.Now()
					r, _ := d.Open(ctx, name, int64(len(data)))
					if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(data)) {
						b.Fatalf("read back %d bytes, %v", n, err)
					}
					r.Close()
					reading += time.Since(start)
					d.Delete(ctx, name)
				}
				mib := float64(len(data)*b.N) / (1 << 20)
				b.ReportMetric(mib/writing.Seconds(), "write-MiB/s")
				b.ReportMetric(mib/reading.Seconds(), "read-MiB/s")
			})
		}
	}
}

package chart_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/airlockdev/airlock/internal/testkit/porttest"
	"github.com/airlockdev/airlock/internal/testkit/proctest"
)

// resources maps the kinds the chart renders to their API path parts:
// group/version prefix and plural. A new kind in a template fails the test
// until it is added here.
var resources = map[string]struct{ prefix, plural string }{
	"ConfigMap":           {"/api/v1", "configmaps"},
	"Service":             {"/api/v1", "services"},
	"ServiceAccount":      {"/api/v1", "serviceaccounts"},
	"Deployment":          {"/apis/apps/v1", "deployments"},
	"DaemonSet":           {"/apis/apps/v1", "daemonsets"},
	"Job":                 {"/apis/batch/v1", "jobs"},
	"PodDisruptionBudget": {"/apis/policy/v1", "poddisruptionbudgets"},
	"NetworkPolicy":       {"/apis/networking.k8s.io/v1", "networkpolicies"},
	"Role":                {"/apis/rbac.authorization.k8s.io/v1", "roles"},
	"RoleBinding":         {"/apis/rbac.authorization.k8s.io/v1", "rolebindings"},
	"ServiceMonitor":      {"/apis/monitoring.coreos.com/v1", "servicemonitors"},
}

// apiServer is a running kube-apiserver on loopback with its etcd.
type apiServer struct {
	url   string
	token string
	c     *http.Client
}

// TestChartAcceptedByAPIServer: a real kube-apiserver (v1.34, Debian's
// etcd) accepts every manifest helm renders for every values example, hooks
// included: server-side apply with dryRun=All, then a real create, then the
// stored object read back. No kubelet or controllers run: nothing is
// scheduled; this proves the manifests are valid and admitted, not that the
// pods work.
func TestChartAcceptedByAPIServer(t *testing.T) {
	helm := tool(t, "helm", "scripts/tools.sh installs helm v4")
	kas := tool(t, "kube-apiserver", "scripts/tools.sh builds it from the Go module proxy")
	etcd := tool(t, "etcd", "apt-get install etcd-server; scripts/deps.sh")
	s := startAPIServer(t, kas, etcd)

	crd, err := os.ReadFile("testdata/servicemonitor-crd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s.do(t, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "application/yaml", crd, http.StatusCreated)
	s.waitEstablished(t, "servicemonitors.monitoring.coreos.com")

	// The check can fail: a misspelt field in a rendered DaemonSet is refused.
	t.Run("misspelt-field-refused", func(t *testing.T) {
		for _, d := range render(t, helm, "", "default") {
			if d["kind"] != "DaemonSet" {
				continue
			}
			get(d, "spec", "template", "spec").(map[string]any)["hostNetworking"] = true
			body, _ := yaml.Marshal(d)
			out := s.do(t, "PATCH", "/apis/apps/v1/namespaces/default/daemonsets/"+get(d, "metadata", "name").(string)+
				"?dryRun=All&fieldManager=airlock-chart-test&force=true&fieldValidation=Strict", "application/apply-patch+yaml", body,
				// kube-apiserver answers an apply patch it cannot type with 500
				// ("failed to create typed patch object"), other refusals 400/422.
				http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusInternalServerError)
			if !strings.Contains(string(out), "hostNetworking") {
				t.Errorf("the refusal does not name the field: %s", out)
			}
			t.Logf("misspelt field refused: %.300s", out)
			return
		}
	})
	for _, f := range examples(t) {
		t.Run(exampleName(f), func(t *testing.T) {
			ns := "airlock-" + exampleName(f)
			s.do(t, "POST", "/api/v1/namespaces", "application/yaml", fmt.Appendf(nil, "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", ns), http.StatusCreated)
			docs := render(t, helm, f, ns)
			kinds := map[string]int{}
			for _, d := range docs {
				kind, _ := d["kind"].(string)
				r, ok := resources[kind]
				if !ok {
					t.Errorf("%s: kind %s has no API path in resources", kindName(d), kind)
					continue
				}
				body, err := yaml.Marshal(d)
				if err != nil {
					t.Fatal(err)
				}
				name := get(d, "metadata", "name").(string)
				coll := fmt.Sprintf("%s/namespaces/%s/%s", r.prefix, ns, r.plural)
				s.do(t, "PATCH", coll+"/"+name+"?dryRun=All&fieldManager=airlock-chart-test&force=true&fieldValidation=Strict", "application/apply-patch+yaml", body, http.StatusCreated, http.StatusOK)
				s.do(t, "POST", coll+"?fieldManager=airlock-chart-test&fieldValidation=Strict", "application/yaml", body, http.StatusCreated)
				got := s.do(t, "GET", coll+"/"+name, "", nil, http.StatusOK)
				var back map[string]any
				if err := json.Unmarshal(got, &back); err != nil {
					t.Fatal(err)
				}
				if get(back, "metadata", "uid") == nil {
					t.Errorf("%s: stored object has no uid", kindName(d))
				}
				kinds[kind]++
			}
			t.Logf("accepted (dry-run apply, create, read back): %d objects %v", len(docs), kinds)
			// The stored node DaemonSet keeps what the chart promises.
			for _, d := range docs {
				if d["kind"] == "DaemonSet" && strings.HasSuffix(get(d, "metadata", "name").(string), "-node") {
					var back map[string]any
					json.Unmarshal(s.do(t, "GET", fmt.Sprintf("/apis/apps/v1/namespaces/%s/daemonsets/%s", ns, get(d, "metadata", "name")), "", nil, http.StatusOK), &back)
					checkNodeSide(t, []map[string]any{back})
				}
			}
		})
	}
}

func startAPIServer(t *testing.T, kas, etcd string) *apiServer {
	t.Helper()
	dir := t.TempDir()
	etcdAddr, peerAddr, kasAddr := porttest.FreeAddr(t), porttest.FreeAddr(t), porttest.FreeAddr(t)
	start(t, filepath.Join(dir, "etcd.log"), etcd,
		"--name", "chart-test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://"+etcdAddr, "--advertise-client-urls", "http://"+etcdAddr,
		"--listen-peer-urls", "http://"+peerAddr, "--initial-advertise-peer-urls", "http://"+peerAddr,
		"--initial-cluster", "chart-test=http://"+peerAddr)

	var b [16]byte
	rand.Read(b[:])
	token := hex.EncodeToString(b[:])
	must(t, os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(token+`,chart-test,chart-test,"system:masters"`+"\n"), 0o600))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	der, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600))
	host, port, _ := strings.Cut(kasAddr, ":")
	start(t, filepath.Join(dir, "kube-apiserver.log"), kas,
		"--etcd-servers", "http://"+etcdAddr,
		"--bind-address", host, "--secure-port", port, "--advertise-address", host,
		"--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.key"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--enable-priority-and-fairness=false",
		"--profiling=false")
	s := &apiServer{
		url: "https://" + kasAddr, token: token,
		// The serving certificate is the self-signed one kube-apiserver
		// made in --cert-dir; the test trusts the connection it dials to
		// the loopback port it chose.
		c: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequest("GET", s.url+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := s.c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(filepath.Join(dir, "kube-apiserver.log"))
			t.Fatalf("kube-apiserver not ready after 90s (%v)\n%s", err, tail(logs, 3000))
		}
		time.Sleep(250 * time.Millisecond)
	}
	return s
}

// do sends one request and fails the test unless the status is one of want.
func (s *apiServer) do(t *testing.T, method, path, ctype string, body []byte, want ...int) []byte {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "application/json")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := s.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	for _, w := range want {
		if resp.StatusCode == w {
			return out
		}
	}
	t.Errorf("%s %s = %d, want %v\n%s\n--- sent:\n%s", method, path, resp.StatusCode, want, out, body)
	return out
}

func (s *apiServer) waitEstablished(t *testing.T, crd string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var got struct {
			Status struct {
				Conditions []struct{ Type, Status string } `json:"conditions"`
			} `json:"status"`
		}
		json.Unmarshal(s.do(t, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"+crd, "", nil, http.StatusOK), &got)
		for _, c := range got.Status.Conditions {
			if c.Type == "Established" && c.Status == "True" {
				// Discovery of the new group follows the condition shortly.
				for ; time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
					req, _ := http.NewRequest("GET", s.url+"/apis/monitoring.coreos.com/v1", nil)
					req.Header.Set("Authorization", "Bearer "+s.token)
					if resp, err := s.c.Do(req); err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							return
						}
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRD %s not established after 30s", crd)
		}
	}
}

// start runs a daemon in the foreground with its output in log; it is
// stopped by its PID (SIGTERM, then SIGKILL) when the test ends, and dies
// with a killed test binary (Pdeathsig).
func start(t *testing.T, log, bin string, args ...string) {
	t.Helper()
	proctest.Daemon(t, log, bin, args...)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

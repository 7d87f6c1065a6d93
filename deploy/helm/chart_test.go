// Package chart_test checks the Helm chart in deploy/helm/airlock with real
// tools: helm (v4, installed by scripts/tools.sh) lints and renders every
// values example, the rendered airlock.yaml files pass `airlock config
// check`, and a real kube-apiserver (with Debian's etcd) accepts every
// rendered manifest (apiserver_test.go). Without the tools the tests skip,
// or fail when AIRLOCK_REQUIRE_TOOLS=1.
package chart_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

const chartDir = "airlock"

// tool finds name in $AIRLOCK_TOOLS/bin (default /opt/airlock-tools), then
// on PATH; missing: skip, or fail under AIRLOCK_REQUIRE_TOOLS=1.
func tool(t *testing.T, name, installedBy string) string {
	t.Helper()
	tools := os.Getenv("AIRLOCK_TOOLS")
	if tools == "" {
		tools = "/opt/airlock-tools"
	}
	p := filepath.Join(tools, "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := name + " not installed (" + installedBy + ")"
	if os.Getenv("AIRLOCK_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// examples are the values files the tests render: the chart's defaults
// (empty name) and every file under examples/.
func examples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values examples under %s/examples (%v)", chartDir, err)
	}
	return append([]string{""}, files...)
}

func exampleName(f string) string {
	if f == "" {
		return "defaults"
	}
	return strings.TrimSuffix(filepath.Base(f), ".yaml")
}

func helmArgs(values string, args ...string) []string {
	if values != "" {
		args = append(args, "-f", values)
	}
	return args
}

// render runs helm template for one values file (hooks included) and
// returns its documents.
func render(t *testing.T, helm, values, namespace string) []map[string]any {
	t.Helper()
	out, err := exec.Command(helm, helmArgs(values, "template", "rel", chartDir, "--namespace", namespace)...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", exampleName(values), err, out)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template %s: output is not YAML: %v", exampleName(values), err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

var (
	airlockOnce sync.Once
	airlockBin  string
	airlockErr  error
)

// airlock is $AIRLOCK_BIN, or a binary built from this tree once.
func airlock(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("AIRLOCK_BIN"); b != "" {
		return b
	}
	airlockOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chart-airlock-")
		if err != nil {
			airlockErr = err
			return
		}
		airlockBin = filepath.Join(dir, "airlock")
		if out, err := exec.Command("go", "build", "-o", airlockBin, "../../cmd/airlock").CombinedOutput(); err != nil {
			airlockErr = errors.New("go build airlock: " + err.Error() + "\n" + string(out))
		}
	})
	if airlockErr != nil {
		t.Fatal(airlockErr)
	}
	return airlockBin
}

func get(m map[string]any, path ...string) any {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func kindName(d map[string]any) string {
	return d["kind"].(string) + "/" + get(d, "metadata", "name").(string)
}

// TestChartLint: helm lint passes for every values example.
func TestChartLint(t *testing.T) {
	helm := tool(t, "helm", "scripts/tools.sh installs helm v4")
	for _, f := range examples(t) {
		t.Run(exampleName(f), func(t *testing.T) {
			out, err := exec.Command(helm, helmArgs(f, "lint", "--strict", chartDir)...).CombinedOutput()
			if err != nil {
				t.Fatalf("helm lint %s: %v\n%s", exampleName(f), err, out)
			}
			t.Logf("helm lint --strict %s: %s", exampleName(f), lastLine(out))
		})
	}
}

// TestChartConfigChecks: every airlock.yaml the chart renders (server,
// node, the reset hook's) passes `airlock config check`, and the node side
// has the shape the chart promises.
func TestChartConfigChecks(t *testing.T) {
	helm := tool(t, "helm", "scripts/tools.sh installs helm v4")
	bin := airlock(t)
	for _, f := range examples(t) {
		t.Run(exampleName(f), func(t *testing.T) {
			docs := render(t, helm, f, "airlock")
			checked := 0
			for _, d := range docs {
				if d["kind"] != "ConfigMap" {
					continue
				}
				data, _ := d["data"].(map[string]any)
				for _, key := range []string{"airlock.yaml", "ready.yaml"} {
					text, ok := data[key].(string)
					if !ok {
						continue
					}
					p := filepath.Join(t.TempDir(), key)
					if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
						t.Fatal(err)
					}
					out, err := exec.Command(bin, "config", "check", p).CombinedOutput()
					if err != nil {
						t.Errorf("airlock config check of %s %s: %v\n%s\n--- file:\n%s", kindName(d), key, err, out, text)
						continue
					}
					checked++
					if key == "airlock.yaml" && strings.HasSuffix(get(d, "metadata", "name").(string), "-node") {
						dryRunApply(t, bin, p)
					}
				}
			}
			if checked < 3 {
				t.Errorf("checked %d airlock.yaml files, want at least 3 (server, node, reset hook)", checked)
			}
			checkNodeSide(t, docs)
		})
	}
}

// dryRunApply: `airlock node apply --dry-run` takes the node agent's
// file (under a temporary root): the node section is complete, e.g. the
// cache rules that artifactSource Cache writes a hosts.toml for.
func dryRunApply(t *testing.T, bin, cfg string) {
	t.Helper()
	out, err := exec.Command(bin, "node", "apply", "--config", cfg, "--root", t.TempDir(), "--dry-run").CombinedOutput()
	if err != nil {
		t.Errorf("airlock node apply --dry-run of the node ConfigMap: %v\n%s", err, out)
		return
	}
	cfgText, _ := os.ReadFile(cfg)
	if strings.Contains(string(cfgText), "artifactSource: Cache") && !strings.Contains(string(out), "hosts.toml") {
		t.Errorf("artifactSource Cache but node apply --dry-run writes no hosts.toml:\n%s", out)
	}
}

// checkNodeSide: the agent DaemonSet runs `airlock node agent`, is
// system-node-critical, tolerates every taint, uses the host network and
// adds no capability but NET_ADMIN and SYS_CHROOT.
func checkNodeSide(t *testing.T, docs []map[string]any) {
	t.Helper()
	for _, d := range docs {
		if d["kind"] != "DaemonSet" || !strings.HasSuffix(get(d, "metadata", "name").(string), "-node") {
			continue
		}
		spec := get(d, "spec", "template", "spec").(map[string]any)
		if spec["priorityClassName"] != "system-node-critical" || spec["hostNetwork"] != true {
			t.Errorf("%s: priorityClassName %v hostNetwork %v, want system-node-critical true", kindName(d), spec["priorityClassName"], spec["hostNetwork"])
		}
		tol, _ := spec["tolerations"].([]any)
		if len(tol) != 1 || get(tol[0].(map[string]any), "operator") != "Exists" {
			t.Errorf("%s: tolerations %v, want [{operator: Exists}]", kindName(d), tol)
		}
		c := spec["containers"].([]any)[0].(map[string]any)
		args := c["args"].([]any)
		if len(args) < 2 || args[0] != "node" || args[1] != "agent" {
			t.Errorf("%s: args %v, want node agent ...", kindName(d), args)
		}
		add, _ := get(c, "securityContext", "capabilities", "add").([]any)
		if !slices.Equal(add, []any{"NET_ADMIN", "SYS_CHROOT"}) {
			t.Errorf("%s: capabilities.add %v, want [NET_ADMIN SYS_CHROOT]", kindName(d), add)
		}
		if get(c, "readinessProbe", "httpGet", "path") != "/readyz" {
			t.Errorf("%s: readiness probe %v, want the agent's /readyz", kindName(d), c["readinessProbe"])
		}
		return
	}
	t.Error("no node agent DaemonSet rendered")
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"verifyd/server/abuse/redistest"
	"verifyd/server/verify/messaging/twilioapitest"
)

// deployDir is the operators' folder, from this package's directory.
const deployDir = "../../deploy"

// needProgram finds a program a test runs: missing, the test is skipped,
// except under CI=true, where it fails.
func needProgram(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (CI installs Debian's %s): %v", name, pkg, err)
		}
		t.Skipf("%s is not installed: %v", name, err)
	}
	return path
}

// TestDeployAlertRules: promtool checks the alerting rules and runs their
// unit tests (each alert fires on what should fire it, and not on the
// healthy series beside).
func TestDeployAlertRules(t *testing.T) {
	t.Parallel()
	promtool := needProgram(t, "promtool", "prometheus")
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// deployFiles answers every file under deploy/ with its contents.
func deployFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(deployDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		files[strings.TrimPrefix(path, deployDir+"/")] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("deploy/ holds %d files, want the alerts, their tests, the dashboard, the manifests and compose", len(files))
	}
	return files
}

// TestDeployFilesParse: every YAML and JSON file under deploy/ parses.
func TestDeployFilesParse(t *testing.T) {
	t.Parallel()
	for name, data := range deployFiles(t) {
		var v any
		switch filepath.Ext(name) {
		case ".yaml", ".yml":
			if err := yaml.Unmarshal(data, &v); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case ".json":
			if err := json.Unmarshal(data, &v); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		default:
			t.Errorf("%s: not YAML or JSON", name)
		}
	}
}

var seriesName = regexp.MustCompile(`\bverifyd_[a-z0-9_]+`)

// TestDeployNamesWhatExists: every verifyd_* series the alerts, the
// dashboard and the manifests name is exported by a running verifyd (the
// messaging backend with Redis, which has every dependency), from its start;
// the probes and the metrics path they name answer; every variable they set
// is one verifyd reads.
func TestDeployNamesWhatExists(t *testing.T) {
	redisSrv := redistest.Start(t)
	api := twilioapitest.NewServer()
	defer api.Close()
	in := startRun(t, messagingEnv(api, redisSrv.URL, "ALLOWED_CHANNELS=sms,call"))
	for _, path := range []string{"/healthz", "/readyz"} {
		if status, body := in.get(t, path); status != 200 {
			t.Errorf("GET %s = %d %s", path, status, body)
		}
	}
	status, metrics := in.get(t, "/metrics")
	if status != 200 {
		t.Fatalf("GET /metrics = %d", status)
	}
	exported := map[string]bool{}
	for _, line := range strings.Split(metrics, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
			if f[3] == "histogram" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					exported[f[2]+s] = true
				}
			}
		}
	}
	files := deployFiles(t)
	named := map[string][]string{}
	for name, data := range files {
		for _, s := range seriesName.FindAllString(string(data), -1) {
			named[s] = append(named[s], name)
		}
	}
	if len(named) < 8 {
		t.Errorf("deploy/ names %d verifyd series, want the alerts' and the dashboard's", len(named))
	}
	for s, where := range named {
		if !exported[s] {
			t.Errorf("%s (named in %v) is not exported by a running verifyd", s, slices.Compact(slices.Sorted(slices.Values(where))))
		}
	}

	// Every variable the manifests and compose set is one verifyd reads.
	known := map[string]bool{}
	typ := reflect.TypeFor[config]()
	for i := range typ.NumField() {
		if key, _, _ := strings.Cut(typ.Field(i).Tag.Get("env"), ","); key != "" {
			known[key] = true
		}
	}
	var cm struct{ Data map[string]string }
	var secret struct{ StringData map[string]string }
	var compose struct {
		Services map[string]struct{ Environment map[string]string }
	}
	for file, into := range map[string]any{"kubernetes/configmap.yaml": &cm, "kubernetes/secret.example.yaml": &secret, "compose.yaml": &compose} {
		if err := yaml.Unmarshal(files[file], into); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	vars := slices.Collect(func(yield func(string) bool) {
		for k := range cm.Data {
			yield(k)
		}
		for k := range secret.StringData {
			if k != "receipt.pem" { // a file, mounted at RECEIPT_SIGNING_KEY_FILE
				yield(k)
			}
		}
		for k := range compose.Services["verifyd"].Environment {
			yield(k)
		}
	})
	deployment := string(files["kubernetes/deployment.yaml"])
	for _, m := range regexp.MustCompile(`name: ([A-Z][A-Z0-9_]+)`).FindAllStringSubmatch(deployment, -1) {
		vars = append(vars, m[1])
	}
	for _, v := range vars {
		if !known[v] {
			t.Errorf("deploy/ sets %s, which verifyd does not read", v)
		}
	}
	for _, want := range []string{"path: /healthz", "path: /readyz", "containerPort: 8080", "runAsNonRoot: true",
		"readOnlyRootFilesystem: true", "prometheus.io/path: /metrics"} {
		if !strings.Contains(deployment, want) {
			t.Errorf("deployment.yaml lacks %q", want)
		}
	}
	if p := string(files["prometheus/prometheus.yml"]); !strings.Contains(p, "metrics_path: /metrics") || !strings.Contains(p, "verifyd:8080") {
		t.Errorf("prometheus.yml does not scrape verifyd's /metrics on 8080:\n%s", p)
	}
}

// Tests of helm-template's Helm semantics: --set parsing and types, the values merge, the
// built-ins, the output format and order, and schema errors.
package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSetTypesAsHelm(t *testing.T) {
	cases := map[string]interface{}{
		"true": true, "FALSE": false, "null": nil, "0": int64(0), "42": int64(42),
		"-3": int64(-3), "007": "007", "1.5": "1.5", "1e3": "1e3", "": "", "yes": "yes",
		"99999999999999999999": "99999999999999999999",
	}
	for in, want := range cases {
		if got := typed(in, false); !reflect.DeepEqual(got, want) {
			t.Errorf("typed(%q) = %#v, want %#v", in, got, want)
		}
		if got := typed(in, true); got != in {
			t.Errorf("--set-string %q = %#v", in, got)
		}
	}
}

func TestApplySet(t *testing.T) {
	v := map[string]interface{}{"keep": "x", "gone": "y", "m": map[string]interface{}{"a": 1.0}}
	for _, expr := range []string{
		"a.b.c=1", `dots\.in\.key=v`, "list={a,2,true}", "empty={}", "idx[2]=z",
		"m.b=2", "gone=null", `comma=a\,b`, "objs[1].name=n",
	} {
		for _, one := range splitUnescaped(expr, ',') {
			if err := applySet(v, one, false); err != nil {
				t.Fatalf("%s: %v", expr, err)
			}
		}
	}
	want := map[string]interface{}{
		"keep":        "x",
		"m":           map[string]interface{}{"a": 1.0, "b": int64(2)},
		"a":           map[string]interface{}{"b": map[string]interface{}{"c": int64(1)}},
		"dots.in.key": "v",
		"list":        []interface{}{"a", int64(2), true},
		"empty":       []interface{}{},
		"idx":         []interface{}{nil, nil, "z"},
		"comma":       "a,b",
		"objs":        []interface{}{nil, map[string]interface{}{"name": "n"}},
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got %#v\nwant %#v", v, want)
	}
	// as Helm: a nested --set over a scalar replaces it (keep.x=1 would), but these are errors
	for _, bad := range []string{"novalue", "=x", "a..b=1"} {
		if err := applySet(map[string]interface{}{"keep": "x"}, bad, false); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestMergeAsHelm(t *testing.T) {
	dst := map[string]interface{}{
		"a": map[string]interface{}{"x": 1.0, "y": 2.0}, "b": "s", "c": []interface{}{1.0, 2.0}, "d": 1.0,
	}
	src := map[string]interface{}{
		"a": map[string]interface{}{"y": 3.0, "z": 4.0}, "b": map[string]interface{}{"k": "v"},
		"c": []interface{}{9.0}, "d": nil,
	}
	got := merge(dst, src)
	want := map[string]interface{}{
		"a": map[string]interface{}{"x": 1.0, "y": 3.0, "z": 4.0}, "b": map[string]interface{}{"k": "v"},
		"c": []interface{}{9.0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

func writeChart(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var testChart = map[string]string{
	"Chart.yaml":  "apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: 4.5.6\n",
	"values.yaml": "replicas: 1\nname: web\nbig: 1000000\ntext: \"{{ .Values.name }}-x\"\n",
	"values.schema.json": `{"type": "object", "properties": {"replicas": {"type": "integer", "minimum": 0},
	  "name": {"type": "string"}}, "required": ["name"]}`,
	"templates/_helpers.tpl": `{{- define "demo.name" -}}{{ .Release.Name }}-{{ .Values.name }}{{- end -}}`,
	"templates/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "demo.name" . }}
  namespace: {{ .Release.Namespace }}
  annotations:
    big: {{ .Values.big | quote }}
    tpl: {{ tpl .Values.text . | quote }}
    chart: {{ .Chart.Name }}-{{ .Chart.Version }}-{{ .Chart.AppVersion }}
    install: {{ .Release.IsInstall | quote }}
    kube: {{ .Capabilities.KubeVersion.Minor | quote }}
    has: {{ .Capabilities.APIVersions.Has "apps/v1" | quote }}
    lookup: {{ lookup "v1" "Secret" "ns" "x" | len | quote }}
    missing: "{{ .Values.nothing }}"
    file: {{ .Files.Get "files/a.txt" | trim | quote }}
    self: {{ .Template.Name }}
spec:
  replicas: {{ .Values.replicas }}
`,
	"templates/sa.yaml":   "# a comment-only document is dropped\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n---\napiVersion: example.com/v1\nkind: Zebra\nmetadata:\n  name: z\n",
	"templates/NOTES.txt": "Installed {{ .Release.Name }}.",
	"files/a.txt":         "hello\n",
	"crds/crd.yaml":       "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: x\n",
}

func TestRenderAsHelmTemplate(t *testing.T) {
	dir := writeChart(t, testChart)
	out, err := run(options{name: "rel", chartDir: dir, namespace: "ns", kubeVersion: "v1.30",
		sets: []string{"replicas=3"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"---\n# Source: demo/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\n",
		"# Source: demo/templates/deploy.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: rel-web\n  namespace: ns\n",
		`big: "1e+06"`, // Helm's values are JSON numbers: a large one prints as a float
		`tpl: "web-x"`, "chart: demo-1.2.3-4.5.6", `install: "true"`, `kube: "30"`, `has: "true"`,
		`lookup: "0"`, `missing: ""`, `file: "hello"`, "self: demo/templates/deploy.yaml",
		"replicas: 3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Helm's kind order: ServiceAccount, Deployment, then unknown kinds; no CRDs, no NOTES
	sa, dep, zebra := strings.Index(out, "kind: ServiceAccount"), strings.Index(out, "kind: Deployment"), strings.Index(out, "kind: Zebra")
	if !(sa < dep && dep < zebra) {
		t.Errorf("order: ServiceAccount %d, Deployment %d, Zebra %d", sa, dep, zebra)
	}
	if strings.Contains(out, "comment-only") || strings.Contains(out, "CustomResourceDefinition") || strings.Contains(out, "Installed") {
		t.Errorf("printed what helm template does not:\n%s", out)
	}
	out, err = run(options{name: "rel", chartDir: dir, namespace: "ns", kubeVersion: "v1.30", includeCrds: true,
		notes: true, isUpgrade: true, showOnly: []string{"templates/deploy.yaml"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "---\n# Source: demo/crds/crd.yaml\n") || strings.Contains(out, "ServiceAccount") ||
		!strings.Contains(out, `install: "false"`) || !strings.HasSuffix(out, "NOTES:\nInstalled rel.\n") {
		t.Errorf("--include-crds --notes --is-upgrade --show-only:\n%s", out)
	}
}

func TestErrorsNameTheValue(t *testing.T) {
	dir := writeChart(t, testChart)
	cases := map[string]options{
		"- replicas: Must be greater than or equal to 0":             {sets: []string{"replicas=-1"}},
		"- replicas: Invalid type. Expected: integer, given: string": {setStrings: []string{"replicas=2"}},
		"- (root): name is required":                                 {sets: []string{"name=null"}},
		"could not find template templates/none.yaml":                {showOnly: []string{"templates/none.yaml"}},
		`--kube-version "1": expected v<major>.<minor>`:              {kubeVersion: "1"},
	}
	for want, o := range cases {
		o.name, o.chartDir, o.namespace = "rel", dir, "ns"
		if o.kubeVersion == "" {
			o.kubeVersion = "v1.30.0"
		}
		_, err := run(o)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want %q", o, err, want)
		}
	}
	bad := writeChart(t, map[string]string{
		"Chart.yaml": "apiVersion: v2\nname: bad\nversion: 1.0.0\n", "values.yaml": "x: {}\n",
		"templates/a.yaml": `{{ required "x.y is required" .Values.x.y }}{{ fail "never" }}`,
	})
	if _, err := run(options{name: "r", chartDir: bad, namespace: "n", kubeVersion: "v1.30.0"}); err == nil ||
		!strings.Contains(err.Error(), "x.y is required") {
		t.Errorf("required: %v", err)
	}
}

func TestParseArgs(t *testing.T) {
	o, err := parseArgs([]string{"rel", "chart", "-f", "a.yaml", "--values=b.yaml", "--set", "a=1",
		"--set-string=b=2", "-n", "kube-system", "--include-crds", "--api-versions", "x/v1"})
	if err != nil {
		t.Fatal(err)
	}
	if o.name != "rel" || o.chartDir != "chart" || !reflect.DeepEqual(o.valueFiles, []string{"a.yaml", "b.yaml"}) ||
		!reflect.DeepEqual(o.sets, []string{"a=1"}) || !reflect.DeepEqual(o.setStrings, []string{"b=2"}) ||
		o.namespace != "kube-system" || !o.includeCrds || !reflect.DeepEqual(o.apiVersions, []string{"x/v1"}) {
		t.Errorf("%+v", o)
	}
	for _, bad := range [][]string{{}, {"a", "b", "c"}, {"chart", "--bogus"}, {"chart", "--set"}} {
		if _, err := parseArgs(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestToYamlAsHelm(t *testing.T) {
	v := map[string]interface{}{"b": []interface{}{1.0, "on"}, "a": map[string]interface{}{"z": nil, "y": 1e6}}
	want := "a:\n  \"y\": 1000000\n  z: null\nb:\n- 1\n- \"on\""
	if got := toYaml(v); got != want {
		t.Errorf("toYaml = %q, want %q", got, want)
	}
}

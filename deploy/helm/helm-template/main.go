// helm-template renders a Helm chart as `helm template` does, with Helm's own engine pieces
// (Go text/template, sprig, values.schema.json through gojsonschema), for checks without helm.
//
// Usage: helm-template [NAME] CHART_DIR [-f values.yaml]... [--set a.b=c]... [--set-string a=b]...
//
//	[--namespace NS] [--kube-version v1.32.0] [--api-versions group/version[/Kind]]...
//	[--include-crds] [--is-upgrade] [--show-only templates/x.yaml] [--notes]
//
// Build offline in GOPATH mode (Debian packages golang-go, golang-github-masterminds-sprig-dev,
// golang-gopkg-yaml.v3-dev, golang-github-xeipuuv-gojsonschema-dev):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o helm-template main.go
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/xeipuuv/gojsonschema"
	yamlv2 "gopkg.in/yaml.v2"
	"gopkg.in/yaml.v3"
)

type options struct {
	name, chartDir, namespace, kubeVersion              string
	valueFiles, sets, setStrings, apiVersions, showOnly []string
	includeCrds, isUpgrade, notes                       bool
}

func usage() string {
	return "usage: helm-template [NAME] CHART_DIR [-f values.yaml]... [--set a.b=c]... " +
		"[--set-string a=b]... [--namespace NS] [--kube-version v1.32.0] [--api-versions g/v]... " +
		"[--include-crds] [--is-upgrade] [--show-only templates/x.yaml] [--notes]"
}

func parseArgs(args []string) (options, error) {
	o := options{name: "release-name", namespace: "default", kubeVersion: "v1.32.0"}
	var positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		flag, val, hasVal := a, "", false
		if strings.HasPrefix(a, "--") {
			if eq := strings.IndexByte(a, '='); eq > 0 {
				flag, val, hasVal = a[:eq], a[eq+1:], true
			}
		}
		next := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("flag %s needs a value", flag)
			}
			i++
			return args[i], nil
		}
		var err error
		var v string
		switch flag {
		case "-f", "--values":
			v, err = next()
			o.valueFiles = append(o.valueFiles, v)
		case "--set":
			v, err = next()
			o.sets = append(o.sets, v)
		case "--set-string":
			v, err = next()
			o.setStrings = append(o.setStrings, v)
		case "-n", "--namespace":
			o.namespace, err = next()
		case "--kube-version":
			o.kubeVersion, err = next()
		case "-a", "--api-versions":
			v, err = next()
			o.apiVersions = append(o.apiVersions, v)
		case "-s", "--show-only":
			v, err = next()
			o.showOnly = append(o.showOnly, v)
		case "--include-crds":
			o.includeCrds = true
		case "--is-upgrade":
			o.isUpgrade = true
		case "--notes":
			o.notes = true
		case "-h", "--help":
			return o, errors.New(usage())
		default:
			if strings.HasPrefix(a, "-") {
				return o, fmt.Errorf("unknown flag %s\n%s", a, usage())
			}
			positional = append(positional, a)
		}
		if err != nil {
			return o, err
		}
	}
	switch len(positional) {
	case 1:
		o.chartDir = positional[0]
	case 2:
		o.name, o.chartDir = positional[0], positional[1]
	default:
		return o, errors.New(usage())
	}
	return o, nil
}

// ---- values ----------------------------------------------------------------------------------

// jsonish turns YAML-decoded data into what Helm's values are after sigs.k8s.io/yaml: JSON types
// (numbers float64, maps map[string]interface{}).
func jsonish(v interface{}) (interface{}, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out interface{}
	err = json.Unmarshal(b, &out)
	return out, err
}

func readYamlMap(file string) (map[string]interface{}, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var raw interface{}
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	v, err := jsonish(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: the top level is not a mapping", file)
	}
	return m, nil
}

// merge overlays src onto dst as Helm coalesces user values onto the chart's: maps merge key by
// key, anything else replaces, and a null removes the key.
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if sm, ok := v.(map[string]interface{}); ok {
			if dm, ok := dst[k].(map[string]interface{}); ok {
				dst[k] = merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

// splitUnescaped splits s at sep, except where sep is escaped with a backslash or inside {...}.
func splitUnescaped(s string, sep byte) []string {
	var parts []string
	var cur strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(c)
			cur.WriteByte(s[i+1])
			i++
			continue
		case c == '{':
			depth++
		case c == '}' && depth > 0:
			depth--
		case c == sep && depth == 0:
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	return append(parts, cur.String())
}

func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var intRe = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)$`)

// typed converts a --set value with Helm's rules (strvals.typedVal): true/false, null, and
// integers without leading zeros are typed; everything else (floats too) stays a string.
func typed(s string, asString bool) interface{} {
	if asString {
		return s
	}
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if intRe.MatchString(s) {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	return s
}

var indexRe = regexp.MustCompile(`^(.*)\[([0-9]+)\]$`)

// applySet sets one `a.b[0].c=value` into values.
func applySet(values map[string]interface{}, expr string, asString bool) error {
	eq := -1
	for i := 0; i < len(expr); i++ {
		if expr[i] == '\\' {
			i++
			continue
		}
		if expr[i] == '=' {
			eq = i
			break
		}
	}
	if eq <= 0 {
		return fmt.Errorf("--set %q: key=value expected", expr)
	}
	keyText, valText := expr[:eq], expr[eq+1:]
	var val interface{}
	if strings.HasPrefix(valText, "{") && strings.HasSuffix(valText, "}") {
		list := []interface{}{}
		inner := valText[1 : len(valText)-1]
		if inner != "" {
			for _, item := range splitUnescaped(inner, ',') {
				list = append(list, typed(unescape(item), asString))
			}
		}
		val = list
	} else {
		val = typed(unescape(valText), asString)
	}
	keys := splitUnescaped(keyText, '.')
	var cur interface{} = values
	for i, raw := range keys {
		last := i == len(keys)-1
		key := unescape(raw)
		idx := -1
		if m := indexRe.FindStringSubmatch(key); m != nil {
			key = m[1]
			idx, _ = strconv.Atoi(m[2])
		}
		if key == "" {
			return fmt.Errorf("--set %q: empty key", expr)
		}
		obj, ok := cur.(map[string]interface{})
		if !ok {
			return fmt.Errorf("--set %q: %s is not a mapping", expr, strings.Join(keys[:i], "."))
		}
		if idx < 0 {
			if last {
				if val == nil {
					delete(obj, key)
				} else {
					obj[key] = val
				}
				return nil
			}
			if _, isMap := obj[key].(map[string]interface{}); !isMap {
				obj[key] = map[string]interface{}{}
			}
			cur = obj[key]
			continue
		}
		list, _ := obj[key].([]interface{})
		for len(list) <= idx {
			list = append(list, nil)
		}
		if last {
			list[idx] = val
			obj[key] = list
			return nil
		}
		if _, isMap := list[idx].(map[string]interface{}); !isMap {
			list[idx] = map[string]interface{}{}
		}
		obj[key] = list
		cur = list[idx]
	}
	return nil
}

// validateSchema checks values against values.schema.json, with Helm's error text.
func validateSchema(chartName, schemaFile string, values map[string]interface{}) error {
	schema, err := os.ReadFile(schemaFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema),
		gojsonschema.NewGoLoader(values))
	if err != nil {
		return fmt.Errorf("%s: %v", schemaFile, err)
	}
	if res.Valid() {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n", chartName)
	var lines []string
	for _, e := range res.Errors() {
		lines = append(lines, fmt.Sprintf("- %s", e))
	}
	sort.Strings(lines) // gojsonschema's order follows map iteration
	for _, l := range lines {
		fmt.Fprintln(&b, l)
	}
	return errors.New(strings.TrimRight(b.String(), "\n"))
}

// ---- the render context --------------------------------------------------------------------

type chartMeta struct {
	Name, Version, AppVersion, Description, Type, KubeVersion, Home, Icon string
	APIVersion                                                            string
	Keywords, Sources                                                     []string
	Annotations                                                           map[string]string
}

type release struct {
	Name, Namespace, Service string
	Revision                 int
	IsInstall, IsUpgrade     bool
}

type kubeVersion struct{ Version, Major, Minor, GitVersion string }

func (k kubeVersion) String() string { return k.Version }

type versionSet []string

// Has reports whether a group/version (or group/version/Kind) is available, as Helm's.
func (v versionSet) Has(s string) bool {
	for _, x := range v {
		if x == s {
			return true
		}
	}
	return false
}

type capabilities struct {
	KubeVersion kubeVersion
	APIVersions versionSet
	HelmVersion map[string]string
}

type files map[string][]byte

func (f files) Get(name string) string      { return string(f[name]) }
func (f files) GetBytes(name string) []byte { return f[name] }
func (f files) Lines(name string) []string  { return strings.Split(string(f[name]), "\n") }
func (f files) Glob(pattern string) files {
	out := files{}
	for k, v := range f {
		if ok, _ := path.Match(pattern, k); ok {
			out[k] = v
		}
	}
	return out
}

var defaultAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1",
	"discovery.k8s.io/v1", "rbac.authorization.k8s.io/v1", "coordination.k8s.io/v1",
	"apiextensions.k8s.io/v1", "admissionregistration.k8s.io/v1", "scheduling.k8s.io/v1",
	"storage.k8s.io/v1", "certificates.k8s.io/v1", "events.k8s.io/v1",
}

func parseKubeVersion(s string) (kubeVersion, error) {
	m := regexp.MustCompile(`^v?([0-9]+)\.([0-9]+)(\.[0-9]+)?$`).FindStringSubmatch(s)
	if m == nil {
		return kubeVersion{}, fmt.Errorf("--kube-version %q: expected v<major>.<minor>[.<patch>]", s)
	}
	patch := m[3]
	if patch == "" {
		patch = ".0"
	}
	v := "v" + m[1] + "." + m[2] + patch
	return kubeVersion{Version: v, Major: m[1], Minor: m[2], GitVersion: v}, nil
}

// ---- the engine ----------------------------------------------------------------------------

// toYaml is Helm's: sigs.k8s.io/yaml's Marshal, that is JSON first, then yaml.v2 (keys sorted,
// sequences not indented under their key), without the final newline.
func toYaml(v interface{}) string {
	j, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var obj interface{}
	if err := yamlv2.Unmarshal(j, &obj); err != nil {
		return ""
	}
	out, err := yamlv2.Marshal(obj)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(out), "\n")
}

func fromYaml(s string) map[string]interface{} {
	var raw interface{}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &raw); err != nil {
		m["Error"] = err.Error()
		return m
	}
	v, err := jsonish(raw)
	if err != nil {
		m["Error"] = err.Error()
		return m
	}
	if mm, ok := v.(map[string]interface{}); ok {
		return mm
	}
	return m
}

func toJson(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

func fromJson(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

type engine struct {
	root *template.Template
}

func (e *engine) funcs() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env") // Helm removes these two
	delete(f, "expandenv")
	f["toYaml"] = toYaml
	f["fromYaml"] = fromYaml
	f["toJson"] = toJson
	f["fromJson"] = fromJson
	f["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return v, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return v, errors.New(msg)
		}
		return v, nil
	}
	f["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil // helm template has no cluster to ask
	}
	f["include"] = func(name string, data interface{}) (string, error) {
		var b strings.Builder
		if err := e.root.ExecuteTemplate(&b, name, data); err != nil {
			return "", err
		}
		return b.String(), nil
	}
	f["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := e.root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", fmt.Errorf("tpl: %v", err)
		}
		var b strings.Builder
		if err := t.Execute(&b, data); err != nil {
			return "", fmt.Errorf("tpl: %v", err)
		}
		return strings.ReplaceAll(b.String(), "<no value>", ""), nil
	}
	return f
}

// installOrder is Helm's kind order (releaseutil.InstallOrder) for the printed manifests.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
	"DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService",
}

type manifest struct {
	source, content, kind string
}

var kindRe = regexp.MustCompile(`(?m)^kind:\s*(\S+)`)

func splitManifests(source, text string) []manifest {
	var out []manifest
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(text, -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		// a document of comments only is dropped, as Helm does
		meaningful := false
		for _, line := range strings.Split(doc, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				meaningful = true
				break
			}
		}
		if !meaningful {
			continue
		}
		m := manifest{source: source, content: strings.Trim(doc, "\n")}
		if k := kindRe.FindStringSubmatch(doc); k != nil {
			m.kind = k[1]
		}
		out = append(out, m)
	}
	return out
}

func kindRank(kind string) int {
	for i, k := range installOrder {
		if k == kind {
			return i
		}
	}
	return len(installOrder)
}

func run(o options) (string, error) {
	chartFile := filepath.Join(o.chartDir, "Chart.yaml")
	chartRaw, err := readYamlMap(chartFile)
	if err != nil {
		return "", err
	}
	var meta chartMeta
	b, _ := json.Marshal(chartRaw)
	if err := json.Unmarshal(b, &meta); err != nil {
		return "", fmt.Errorf("%s: %v", chartFile, err)
	}
	if meta.Name == "" || meta.Version == "" {
		return "", fmt.Errorf("%s: name and version are required", chartFile)
	}
	values, err := readYamlMap(filepath.Join(o.chartDir, "values.yaml"))
	if err != nil {
		return "", err
	}
	for _, f := range o.valueFiles {
		m, err := readYamlMap(f)
		if err != nil {
			return "", err
		}
		values = merge(values, m)
	}
	// Helm's order: -f files, then --set, then --set-string.
	for _, set := range []struct {
		exprs    []string
		asString bool
	}{{o.sets, false}, {o.setStrings, true}} {
		for _, s := range set.exprs {
			for _, one := range splitUnescaped(s, ',') {
				if err := applySet(values, one, set.asString); err != nil {
					return "", err
				}
			}
		}
	}
	norm, err := jsonish(values) // --set ints stay int64 in Helm; JSON round trip for the schema only
	if err != nil {
		return "", err
	}
	if err := validateSchema(meta.Name, filepath.Join(o.chartDir, "values.schema.json"),
		norm.(map[string]interface{})); err != nil {
		return "", err
	}
	kv, err := parseKubeVersion(o.kubeVersion)
	if err != nil {
		return "", err
	}
	caps := capabilities{KubeVersion: kv, APIVersions: append(versionSet{}, defaultAPIVersions...),
		HelmVersion: map[string]string{"Version": "v3.16.0"}}
	caps.APIVersions = append(caps.APIVersions, o.apiVersions...)

	// Every file of the chart is in .Files except templates/ and the chart's own files.
	chartFiles := files{}
	var templateNames []string
	templates := map[string]string{}
	var crds []manifest
	err = filepath.Walk(o.chartDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(o.chartDir, p)
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			templateNames = append(templateNames, rel)
			templates[rel] = string(data)
		case strings.HasPrefix(rel, "crds/"):
			if strings.HasSuffix(rel, ".yaml") || strings.HasSuffix(rel, ".yml") || strings.HasSuffix(rel, ".json") {
				crds = append(crds, splitManifests(meta.Name+"/"+rel, string(data))...)
			}
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json":
		default:
			chartFiles[rel] = data
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(templateNames)

	e := &engine{}
	e.root = template.New("gotpl").Option("missingkey=zero").Funcs(e.funcs())
	for _, name := range templateNames {
		if _, err := e.root.New(meta.Name + "/" + name).Parse(templates[name]); err != nil {
			return "", err
		}
	}
	top := map[string]interface{}{
		"Values":       values,
		"Release":      release{Name: o.name, Namespace: o.namespace, Service: "Helm", Revision: 1, IsInstall: !o.isUpgrade, IsUpgrade: o.isUpgrade},
		"Chart":        meta,
		"Capabilities": caps,
		"Files":        chartFiles,
	}
	var out []manifest
	var notes string
	for _, name := range templateNames {
		base := path.Base(name)
		if strings.HasPrefix(base, "_") {
			continue
		}
		full := meta.Name + "/" + name
		ctx := map[string]interface{}{}
		for k, v := range top {
			ctx[k] = v
		}
		ctx["Template"] = map[string]string{"Name": full, "BasePath": meta.Name + "/templates"}
		var b strings.Builder
		if err := e.root.ExecuteTemplate(&b, full, ctx); err != nil {
			return "", err
		}
		text := strings.ReplaceAll(b.String(), "<no value>", "")
		if base == "NOTES.txt" {
			notes = text
			continue
		}
		if !strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml") && !strings.HasSuffix(base, ".tpl") {
			continue
		}
		if len(o.showOnly) > 0 {
			keep := false
			for _, s := range o.showOnly {
				keep = keep || s == name || s == full
			}
			if !keep {
				continue
			}
		}
		out = append(out, splitManifests(full, text)...)
	}
	if len(o.showOnly) > 0 && len(out) == 0 {
		return "", fmt.Errorf("could not find template %s in chart", strings.Join(o.showOnly, ", "))
	}
	sort.SliceStable(out, func(i, j int) bool {
		// Helm's lessByKind: install order, then unknown kinds by name; otherwise file order
		ri, rj := kindRank(out[i].kind), kindRank(out[j].kind)
		if ri != rj {
			return ri < rj
		}
		return ri == len(installOrder) && out[i].kind < out[j].kind
	})
	var w strings.Builder
	if o.includeCrds {
		for _, c := range crds {
			fmt.Fprintf(&w, "---\n# Source: %s\n%s\n", c.source, c.content)
		}
	}
	for _, m := range out {
		fmt.Fprintf(&w, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	if o.notes && notes != "" {
		fmt.Fprintf(&w, "\nNOTES:\n%s\n", notes)
	}
	return w.String(), nil
}

func main() {
	o, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(2)
	}
	text, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	fmt.Print(text)
}

package deploy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/weirstream/weir/features"
	"github.com/weirstream/weir/metrics"
	"github.com/weirstream/weir/observe"
)

// metricFamily is one metric family the engine registers.
type metricFamily struct {
	name   string
	kind   string   // counter, gauge, histogram, summary or untyped
	labels []string // label names its series carry, the constant job label included
}

// registeredMetrics returns every metric family metrics.New registers: the
// engine's weir_ metrics, all labelled with `job` (the stream job's name),
// and the Go runtime and process collectors. The dashboard may query these
// and no other weir_, go_ or process_ series. The list comes from the
// metrics package itself, so it cannot drift from what the engine exports.
//
// A labelled metric exposes no series until it is observed, so every
// observe.Observer method is called with sample arguments, and the registry
// gathered after each call (TaskStopped and PartitionRevoked delete series).
func registeredMetrics(t *testing.T) map[string]metricFamily {
	t.Helper()
	p := metrics.New("job")
	// The job's feature flags, which Run registers, with one flag set.
	t.Setenv(features.EnvPrefix+"DEMO", "on")
	if err := p.RegisterForJob(features.New()); err != nil {
		t.Fatal(err)
	}
	families := map[string]metricFamily{}
	gather := func() {
		t.Helper()
		mfs, err := p.Registry().Gather()
		if err != nil {
			t.Fatalf("gathering metrics: %v", err)
		}
		for _, mf := range mfs {
			f := families[mf.GetName()]
			f.name = mf.GetName()
			f.kind = strings.ToLower(mf.GetType().String())
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if !slices.Contains(f.labels, l.GetName()) {
						f.labels = append(f.labels, l.GetName())
					}
				}
			}
			families[f.name] = f
		}
	}
	gather()
	obs := reflect.ValueOf(p)
	iface := reflect.TypeFor[observe.Observer]()
	for i := range iface.NumMethod() {
		m := iface.Method(i)
		args := make([]reflect.Value, m.Type.NumIn())
		for j := range args {
			arg, ok := sampleArg(m.Type.In(j))
			if !ok {
				t.Fatalf("observe.Observer.%s takes a %s; teach sampleArg a sample value for it", m.Name, m.Type.In(j))
			}
			args[j] = arg
		}
		obs.MethodByName(m.Name).Call(args)
		// A method that reports an error reports success with nil: call
		// it with nil too, so the series of both outcomes exist.
		for j := range args {
			if m.Type.In(j) == reflect.TypeFor[error]() {
				args[j] = reflect.Zero(m.Type.In(j))
				obs.MethodByName(m.Name).Call(args)
			}
		}
		gather()
	}
	if len(engineMetrics(families)) == 0 {
		t.Fatal("metrics.New registers no weir_ metrics")
	}
	return families
}

// sampleArg returns a value of type t to call an observer method with.
func sampleArg(t reflect.Type) (reflect.Value, bool) {
	switch t {
	case reflect.TypeFor[time.Time]():
		return reflect.ValueOf(time.Now()), true
	case reflect.TypeFor[time.Duration]():
		return reflect.ValueOf(time.Second), true
	case reflect.TypeFor[error]():
		return reflect.ValueOf(errors.New("sample")).Convert(t), true
	}
	switch t.Kind() {
	case reflect.String:
		return reflect.ValueOf("0_0").Convert(t), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return reflect.ValueOf(1).Convert(t), true
	case reflect.Bool:
		return reflect.ValueOf(true).Convert(t), true
	}
	return reflect.Value{}, false
}

// engineMetrics returns the weir_ families, sorted by name.
func engineMetrics(families map[string]metricFamily) []metricFamily {
	var out []metricFamily
	for _, name := range sortedKeys(families) {
		if strings.HasPrefix(name, "weir_") {
			out = append(out, families[name])
		}
	}
	return out
}

// processMetrics are the Go client's standard process and runtime
// collectors, which the dashboard also charts.
var processMetrics = []string{
	"process_resident_memory_bytes",
	"process_cpu_seconds_total",
	"go_goroutines",
}

// dashboardDatasourceUID is the uid the provisioned Prometheus datasource
// carries (deploy/grafana/provisioning/datasources/prometheus.yml).
const dashboardDatasourceUID = "weir-prometheus"

const dashboardPath = "grafana/dashboards/weir.json"

// seriesNames maps every series name the registered metrics expose to its
// metric family: histograms expose _bucket, _sum and _count series, and
// summaries the family name, _sum and _count.
func seriesNames(families map[string]metricFamily) map[string]string {
	names := map[string]string{}
	for _, m := range families {
		switch m.kind {
		case "histogram", "gauge_histogram":
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[m.name+suffix] = m.name
			}
		case "summary":
			for _, suffix := range []string{"", "_sum", "_count"} {
				names[m.name+suffix] = m.name
			}
		default:
			names[m.name] = m.name
		}
	}
	return names
}

// repoRoot is the repository root (the parent of this package's directory).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s has no go.mod: %v", root, err)
	}
	return root
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []annotation `json:"list"`
	} `json:"annotations"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // collapsed rows
}

type templateVar struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Datasource *datasourceRef  `json:"datasource"`
	Definition string          `json:"definition"`
	Query      json.RawMessage `json:"query"` // a string, or {"query": "..."}
}

func (v templateVar) queryString() (string, error) {
	if len(v.Query) == 0 {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v.Query, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &obj); err != nil {
		return "", fmt.Errorf("variable %q: query is neither a string nor an object: %w", v.Name, err)
	}
	return obj.Query, nil
}

type annotation struct {
	Name       string         `json:"name"`
	BuiltIn    int            `json:"builtIn"`
	Datasource *datasourceRef `json:"datasource"`
	Expr       string         `json:"expr"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// allPanels flattens rows, collapsed or not.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// query is one PromQL expression of the dashboard and where it comes from.
type query struct {
	where string
	expr  string
}

func dashboardQueries(t *testing.T, d dashboard) []query {
	t.Helper()
	var qs []query
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			qs = append(qs, query{fmt.Sprintf("annotation %q", a.Name), a.Expr})
		}
	}
	for _, v := range d.Templating.List {
		q, err := v.queryString()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{q, v.Definition} {
			if s != "" {
				qs = append(qs, query{fmt.Sprintf("variable %q", v.Name), s})
			}
		}
	}
	return qs
}

var (
	// metricRE matches the names of series the engine's registry exposes:
	// its own weir_ metrics and the Go runtime and process collectors'.
	metricRE     = regexp.MustCompile(`\b(?:weir|go|process)_[a-zA-Z0-9_]+`)
	weirMetricRE = regexp.MustCompile(`\bweir_[a-zA-Z0-9_]+`)
	// selectorRE matches a weir_ metric and its label matchers.
	selectorRE = regexp.MustCompile(`\b(weir_[a-zA-Z0-9_]+)\s*\{([^}]*)\}`)
	// matcherRE matches the label name of one label matcher.
	matcherRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	// groupingRE matches the label list of a by/without clause.
	groupingRE = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// TestDashboardQueriesOnlyExportedMetrics checks that every weir_, go_ and
// process_ series the dashboard queries is one metrics.New registers, and
// that every weir_ metric, and the process metrics, has a panel.
func TestDashboardQueriesOnlyExportedMetrics(t *testing.T) {
	d := readDashboard(t)
	families := registeredMetrics(t)
	known := seriesNames(families)
	used := map[string]bool{}

	qs := dashboardQueries(t, d)
	if len(qs) == 0 {
		t.Fatal("dashboard has no queries")
	}
	for _, q := range qs {
		for _, name := range metricRE.FindAllString(q.expr, -1) {
			family, ok := known[name]
			if !ok {
				prefix, _, _ := strings.Cut(name, "_")
				var similar []string
				for _, k := range sortedKeys(known) {
					if strings.HasPrefix(k, prefix+"_") {
						similar = append(similar, k)
					}
				}
				t.Errorf("%s queries %s, which the engine's metrics do not expose (%s_ series: %s)",
					q.where, name, prefix, strings.Join(similar, ", "))
				continue
			}
			used[family] = true
		}
		if err := checkBalanced(q.expr); err != nil {
			t.Errorf("%s: %v in %q", q.where, err, q.expr)
		}
	}

	for _, m := range engineMetrics(families) {
		if !used[m.name] {
			t.Errorf("no dashboard query uses %s", m.name)
		}
	}
	for _, name := range processMetrics {
		if _, ok := families[name]; !ok {
			t.Errorf("metrics.New does not register %s", name)
		}
		if !used[name] {
			t.Errorf("no dashboard query uses %s", name)
		}
	}
}

// TestDashboardLabels checks that queries group by labels the metric has and
// that panels honour the $job variable.
func TestDashboardLabels(t *testing.T) {
	d := readDashboard(t)
	families := registeredMetrics(t)
	series := seriesNames(families)
	labels := map[string][]string{}
	for _, m := range engineMetrics(families) {
		if !slices.Contains(m.labels, "job") {
			t.Errorf("%s does not carry the job label", m.name)
		}
		ls := append([]string{"instance"}, m.labels...) // instance is added by Prometheus
		if m.kind == "histogram" {
			ls = append(ls, "le")
		}
		for name, family := range series {
			if family == m.name {
				labels[name] = ls
			}
		}
	}

	for _, q := range dashboardQueries(t, d) {
		if strings.HasPrefix(q.where, "variable") {
			continue
		}
		names := weirMetricRE.FindAllString(q.expr, -1)
		if len(names) == 0 || slices.ContainsFunc(names, func(n string) bool { return labels[n] == nil }) {
			continue // no weir_ metric, or an unknown one (reported by TestDashboardQueriesOnlyExportedMetrics)
		}
		if !strings.Contains(q.expr, `job=~"$job"`) {
			t.Errorf("%s does not filter on job=~\"$job\": %q", q.where, q.expr)
		}
		// Labels shared by every metric of the query.
		var common []string
		for i, n := range names {
			if i == 0 {
				common = slices.Clone(labels[n])
				continue
			}
			common = slices.DeleteFunc(common, func(l string) bool { return !slices.Contains(labels[n], l) })
		}
		for _, m := range selectorRE.FindAllStringSubmatch(q.expr, -1) {
			for _, lm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
				if !slices.Contains(labels[m[1]], lm[1]) {
					t.Errorf("%s matches on label %q, which %s does not carry", q.where, lm[1], m[1])
				}
			}
		}
		for _, m := range groupingRE.FindAllStringSubmatch(q.expr, -1) {
			for l := range strings.SplitSeq(m[1], ",") {
				l = strings.TrimSpace(l)
				if l != "" && !slices.Contains(common, l) {
					t.Errorf("%s groups by %q, which %s does not carry", q.where, l, strings.Join(names, ", "))
				}
			}
		}
	}
}

func TestDashboardStructure(t *testing.T) {
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard needs a uid and a title, got uid=%q title=%q", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		t.Errorf("schemaVersion = %d, want about 39", d.SchemaVersion)
	}

	// $job comes from weir_ready.
	var jobVar *templateVar
	for i, v := range d.Templating.List {
		if v.Name == "job" {
			jobVar = &d.Templating.List[i]
		}
		if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != dashboardDatasourceUID) {
			t.Errorf("variable %q: datasource %+v, want uid %q", v.Name, v.Datasource, dashboardDatasourceUID)
		}
	}
	if jobVar == nil {
		t.Fatal("dashboard has no `job` variable")
	}
	q, err := jobVar.queryString()
	if err != nil {
		t.Fatal(err)
	}
	if compact(q) != "label_values(weir_ready,job)" {
		t.Errorf("job variable query = %q, want label_values(weir_ready, job)", q)
	}

	// Panels: unique ids, datasource by uid, inside the 24-column grid and
	// not overlapping.
	ids := map[int]string{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	place := func(p panel) {
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
			return
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panel %q overlaps panel %q at (%d,%d)", p.Title, other, x, y)
					return
				}
				taken[cell{x, y}] = p.Title
			}
		}
	}
	for _, p := range allPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d missing or already used by %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		place(p)
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != dashboardDatasourceUID || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want prometheus uid %q", p.Title, p.Datasource, dashboardDatasourceUID)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Datasource != nil && tg.Datasource.UID != dashboardDatasourceUID {
				t.Errorf("panel %q target %s: datasource uid %q, want %q", p.Title, tg.RefID, tg.Datasource.UID, dashboardDatasourceUID)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q missing or duplicated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s: empty expr", p.Title, tg.RefID)
			}
		}
	}
}

// checkBalanced reports unbalanced (), [] and {} outside string literals: a
// cheap guard against PromQL typos.
func checkBalanced(expr string) error {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	var quote rune
	for _, r := range expr {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '"' || r == '\'' || r == '`':
			quote = r
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case r == ')' || r == ']' || r == '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return fmt.Errorf("unbalanced %q", r)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if quote != 0 {
		return fmt.Errorf("unterminated string")
	}
	if len(stack) > 0 {
		return fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	return nil
}

func compact(s string) string {
	return strings.Join(strings.Fields(s), "")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

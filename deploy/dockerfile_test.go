package deploy_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case: FROM, ARG, RUN, ...
	args string
}

// dockerfileStage is one FROM ... block.
type dockerfileStage struct {
	from         string // image reference as written
	name         string // AS name, if any
	instructions []instruction
}

// parseDockerfile is a minimal Dockerfile reader: comments, line
// continuations and instructions. Enough to check the build's shape; the
// real parser runs in `docker build`.
func parseDockerfile(t *testing.T, path string) (globalArgs map[string]string, stages []dockerfileStage) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	globalArgs = map[string]string{}
	var (
		sc      = bufio.NewScanner(f)
		n       int
		pending strings.Builder
		start   int
	)
	emit := func() {
		text := strings.TrimSpace(pending.String())
		pending.Reset()
		if text == "" {
			return
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		switch {
		case in.cmd == "FROM":
			fields := strings.Fields(in.args)
			fields = slices.DeleteFunc(fields, func(s string) bool { return strings.HasPrefix(s, "--platform=") })
			st := dockerfileStage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			stages = append(stages, st)
		case len(stages) == 0 && in.cmd == "ARG":
			name, def, _ := strings.Cut(in.args, "=")
			globalArgs[name] = def
		case len(stages) == 0:
			t.Errorf("%s:%d: %s before the first FROM", path, in.line, in.cmd)
		default:
			st := &stages[len(stages)-1]
			st.instructions = append(st.instructions, in)
		}
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && pending.Len() == 0) {
			continue // comment (also inside a continued instruction) or blank
		}
		if pending.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(trimmed, `\`); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(trimmed)
		emit()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	emit()
	return globalArgs, stages
}

var argRefRE = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

func expandArgs(s string, args map[string]string) string {
	return argRefRE.ReplaceAllStringFunc(s, func(ref string) string {
		name := argRefRE.FindStringSubmatch(ref)[1]
		if v, ok := args[name]; ok {
			return v
		}
		return ref
	})
}

func (s dockerfileStage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instructions {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// argDefault is the default of ARG name declared in the stage, if any.
func (s dockerfileStage) argDefault(name string) (string, bool) {
	for _, in := range s.find("ARG") {
		n, def, _ := strings.Cut(in.args, "=")
		if n == name {
			return def, true
		}
	}
	return "", false
}

func TestDockerfile(t *testing.T) {
	path := filepath.Join(repoRoot(t), "Dockerfile")
	globalArgs, stages := parseDockerfile(t, path)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	if from := expandArgs(build.from, globalArgs); from != "golang:1.26" {
		t.Errorf("build stage FROM %s (= %s), want golang:1.26", build.from, from)
	}
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("runtime stage FROM %s, want gcr.io/distroless/static-debian12:nonroot or scratch", final.from)
	}

	// Static binaries for every cmd/ package, into /out/.
	var cgoOff, buildsCmds bool
	for _, in := range build.find("ENV") {
		cgoOff = cgoOff || regexp.MustCompile(`\bCGO_ENABLED=0\b`).MatchString(in.args)
	}
	for _, in := range build.find("RUN") {
		cgoOff = cgoOff || strings.Contains(in.args, "CGO_ENABLED=0")
		buildsCmds = buildsCmds || regexp.MustCompile(`\bgo build\b.*-o /out/ \./cmd/\.\.\.`).MatchString(in.args)
	}
	if !cgoOff {
		t.Error("build stage does not set CGO_ENABLED=0")
	}
	if !buildsCmds {
		t.Error("build stage does not run `go build ... -o /out/ ./cmd/...`")
	}

	// JOB=demo picks the entrypoint; binaries land in /usr/local/bin.
	for _, st := range []dockerfileStage{build, final} {
		if def, ok := st.argDefault("JOB"); !ok || def != "demo" {
			t.Errorf("stage FROM %s: ARG JOB default %q (declared: %v), want demo", st.from, def, ok)
		}
	}
	var copiesBins bool
	for _, in := range final.find("COPY") {
		copiesBins = copiesBins || (strings.Contains(in.args, "--from="+build.name) && strings.HasSuffix(in.args, " /usr/local/bin/"))
	}
	if !copiesBins {
		t.Errorf("runtime stage does not COPY --from=%s the binaries into /usr/local/bin/", build.name)
	}
	entry := final.find("ENTRYPOINT")
	if len(entry) != 1 {
		t.Fatalf("runtime stage has %d ENTRYPOINT instructions, want 1", len(entry))
	}
	var argv []string
	if err := json.Unmarshal([]byte(entry[0].args), &argv); err != nil || len(argv) == 0 {
		t.Fatalf("ENTRYPOINT %s: want exec (JSON) form, the image has no shell: %v", entry[0].args, err)
	}
	if !strings.HasPrefix(argv[0], "/usr/local/bin/") {
		t.Errorf("ENTRYPOINT runs %s, want a binary in /usr/local/bin", argv[0])
	}
	// The entrypoint is a link made from $JOB in the build stage.
	link := strings.TrimPrefix(argv[0], "/usr/local/bin/")
	var linked bool
	for _, in := range build.find("RUN") {
		linked = linked || regexp.MustCompile(`ln -s "?\$\{?JOB\}?"? /out/`+regexp.QuoteMeta(link)+`\b`).MatchString(in.args)
	}
	if !linked {
		t.Errorf("build stage does not link /out/%s to the $JOB binary", link)
	}

	// Metrics and health port.
	var exposed bool
	for _, in := range final.find("EXPOSE") {
		exposed = exposed || slices.Contains(strings.Fields(in.args), "9464") || slices.Contains(strings.Fields(in.args), "9464/tcp")
	}
	if !exposed {
		t.Error("runtime stage does not EXPOSE 9464")
	}
	// Non-root at runtime.
	users := final.find("USER")
	if len(users) == 0 && strings.HasPrefix(final.from, "gcr.io/distroless/") && strings.HasSuffix(final.from, ":nonroot") {
		users = append(users, instruction{cmd: "USER", args: "65532"}) // the image's default
	}
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1].args, "0") || strings.HasPrefix(users[len(users)-1].args, "root") {
		t.Error("runtime stage runs as root")
	}
}

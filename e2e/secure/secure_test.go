// Package secure runs Weir against a broker of its own that requires
// TLS, SASL and ACLs, as production clusters do: a job and the weir CLI
// connect from environment variables and secret files only, a wrong
// password and each missing ACL stop the job at start with an error that
// names what is missing, and the secret shows nowhere.
package secure

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/internal/kafkaconn"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/internal/testcerts"
)

// secure is the secured broker of one test run.
type secure struct {
	plain, sasl []string // PLAINTEXT (ANONYMOUS, a super user) and SASL_SSL addresses
	dir         string   // certificates and secret files
	adm         *kadm.Client
}

var (
	brokerOnce sync.Once
	broker     *secure
	brokerErr  error
	binDir     string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weir-secure-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	if broker != nil {
		stopBroker()
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func stopBroker() {
	cmd := exec.Command("bash", os.Getenv("WEIR_KAFKA_SH"), "stop")
	cmd.Env = append(os.Environ(), "WEIR_KAFKA_DIR="+filepath.Join(binDir, "kafka"))
	_ = cmd.Run()
}

// secured starts, once per run, a broker with a SASL_SSL listener
// (scripts/kafka.sh with WEIR_KAFKA_SECURE_DIR) whose certificates the
// test makes.
func secured(t *testing.T) *secure {
	t.Helper()
	script := os.Getenv("WEIR_KAFKA_SH")
	if script == "" {
		if os.Getenv("WEIR_REQUIRE_KAFKA") == "1" {
			t.Fatal("WEIR_REQUIRE_KAFKA=1 but WEIR_KAFKA_SH is not set: the secured broker is started by scripts/kafka.sh (make test)")
		}
		t.Skip("needs scripts/kafka.sh (WEIR_KAFKA_SH, set by make test) to start a secured broker")
	}
	brokerOnce.Do(func() { broker, brokerErr = startSecured(script) })
	if brokerErr != nil {
		t.Fatal(brokerErr)
	}
	return broker
}

func startSecured(script string) (*secure, error) {
	dir := filepath.Join(binDir, "certs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := testcerts.NewCA("weir-test-ca")
	if err != nil {
		return nil, err
	}
	leaf, err := ca.Issue("localhost")
	if err != nil {
		return nil, err
	}
	if err := leaf.WriteFiles(dir, "server"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca.PEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "plain-users"), []byte("plain-user=plain-"+secretWord+"\n"), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command("bash", script, "start")
	cmd.Env = append(os.Environ(), "WEIR_KAFKA_DIR="+filepath.Join(binDir, "kafka"), "WEIR_KAFKA_SECURE_DIR="+dir, "WEIR_KAFKA_PORT=19192")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("starting the secured broker: %v\n%s", err, stderr.String())
	}
	s := &secure{dir: dir}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "KAFKA_BROKERS="); ok {
			s.plain = []string{v}
		}
		if v, ok := strings.CutPrefix(line, "KAFKA_SASL_SSL_BROKERS="); ok {
			s.sasl = []string{v}
		}
	}
	if s.plain == nil || s.sasl == nil {
		return nil, fmt.Errorf("the secured broker printed no addresses:\n%s", out)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.plain...))
	if err != nil {
		return nil, err
	}
	s.adm = kadm.NewClient(cl)
	return s, nil
}

// secretWord is in every password the test sets: no output may show it.
const secretWord = "Hunter2-Zebra-Quartz"

// user creates a SCRAM-SHA-512 user and writes its password to a file.
func (s *secure) user(t *testing.T, name string) (passwordFile string) {
	t.Helper()
	pw := name + "-" + secretWord
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: name, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: pw}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("creating SCRAM user %s: %v", name, err)
	}
	passwordFile = filepath.Join(s.dir, name+".password")
	if err := os.WriteFile(passwordFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return passwordFile
}

// grant creates ACLs: each builder gets the principal as allowed.
func (s *secure) grant(t *testing.T, principal string, acls ...*kadm.ACLBuilder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, b := range acls {
		res, err := s.adm.CreateACLs(ctx, b.Allow(principal).AllowHosts("*"))
		if err != nil {
			t.Fatalf("creating ACLs: %v", err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatalf("creating ACL %+v: %v", r, r.Err)
			}
		}
	}
}

// jobACLs are what the counter job needs, as the README lists them, less
// those named in without.
func jobACLs(group, in, out string, without ...string) []*kadm.ACLBuilder {
	all := map[string]*kadm.ACLBuilder{
		"source":   kadm.NewACLs().Topics(in).Operations(kadm.OpRead),
		"sink":     kadm.NewACLs().Topics(out).Operations(kadm.OpWrite, kadm.OpDescribeConfigs),
		"internal": kadm.NewACLs().Topics(group+"-").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead, kadm.OpWrite, kadm.OpCreate, kadm.OpDescribe),
		"group":    kadm.NewACLs().Groups(group).Operations(kadm.OpRead),
		"txn":      kadm.NewACLs().TransactionalIDs(group+"-").ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpWrite, kadm.OpDescribe),
	}
	for _, w := range without {
		delete(all, w)
	}
	var bs []*kadm.ACLBuilder
	for _, b := range all {
		bs = append(bs, b)
	}
	return bs
}

// build builds a package of the module once into binDir.
func build(t *testing.T, pkg string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(pkg, &built{})
	b := v.(*built)
	b.once.Do(func() {
		b.path = filepath.Join(binDir, filepath.Base(pkg))
		out, err := exec.Command("go", "build", "-race", "-o", b.path, pkg).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

var builds sync.Map

type built struct {
	once sync.Once
	path string
	err  error
}

// job is the counter job (e2e/jobs/counter) running as a process.
type job struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *secure) clientEnv(user, passwordFile string) []string {
	return []string{
		"WEIR_BROKERS=" + strings.Join(s.sasl, ","),
		"WEIR_KAFKA_TLS_CA_FILE=" + filepath.Join(s.dir, "ca.pem"),
		"WEIR_KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
		"WEIR_KAFKA_SASL_USERNAME=" + user,
		"WEIR_KAFKA_SASL_PASSWORD_FILE=" + passwordFile,
	}
}

func startJob(t *testing.T, env ...string) *job {
	t.Helper()
	cmd := exec.Command(build(t, "github.com/weirstream/weir/e2e/jobs/counter"))
	cmd.Env = append(append(os.Environ(), "WEIR_STATE_DIR="+t.TempDir(), "WEIR_SESSION_TIMEOUT=6s"), env...)
	j := &job{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = j.out, j.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { j.err = cmd.Wait(); close(j.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-j.done
		if t.Failed() {
			t.Logf("job output:\n%s", j.out.String())
		}
	})
	return j
}

// exitWithin waits for the job to stop by itself and returns its output.
func (j *job) exitWithin(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case <-j.done:
	case <-time.After(d):
		t.Fatalf("the job still runs after %v; it should have stopped:\n%s", d, j.out.String())
	}
	if j.err == nil {
		t.Fatalf("the job exited 0; it should have failed:\n%s", j.out.String())
	}
	return j.out.String()
}

// TestJobOverSASLSSLWithACLs runs the counter job as its own user over
// SASL_SSL (SCRAM-SHA-512, a CA of the test's own, the password from a
// file), with exactly the ACLs the README lists: its outputs are exact,
// and its logs, metrics, probes and command line hold no secret. The
// weir CLI reads the job's offsets over the same connection.
func TestJobOverSASLSSLWithACLs(t *testing.T) {
	s := secured(t)
	group := kafkatest.Name("secure-job")
	in, out := kafkatest.Name("secure-in"), kafkatest.Name("secure-out")
	for _, topic := range []string{in, out} {
		kafkatest.CreateNamedTopic(t, s.plain, topic, 2)
	}
	pwFile := s.user(t, group)
	s.grant(t, "User:"+group, jobACLs(group, in, out)...)

	const keys, perKey = 20, 10
	cl := kafkatest.Client(t, s.plain)
	var recs []*kgo.Record
	for i := range keys * perKey {
		recs = append(recs, &kgo.Record{Topic: in, Value: []byte(fmt.Sprintf("k%02d", i%keys))})
	}
	kafkatest.ProduceSync(t, cl, recs...)

	addr := kafkatest.FreeAddr(t)
	j := startJob(t, append(s.clientEnv(group, pwFile), "JOB_INPUT="+in, "JOB_OUTPUT="+out,
		"WEIR_GROUP="+group, "WEIR_METRICS_ADDR="+addr, "WEIR_CHECKPOINT_INTERVAL=200ms")...)
	got := kafkatest.ReadAll(t, s.plain, out, keys*perKey, 2*time.Minute)
	counts := map[string]int{}
	for _, r := range got {
		counts[string(r.Value)]++
	}
	for n := 1; n <= perKey; n++ {
		if c := counts[strconv.Itoa(n)]; c != keys {
			t.Fatalf("count %d was output %d times, want %d (one per key): %v", n, c, keys, counts)
		}
	}

	// The secret shows nowhere a user or a scraper looks.
	var seen []string
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		seen = append(seen, httpGet(t, "http://"+addr+path))
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", j.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	seen = append(seen, string(cmdline))

	// The CLI, over the same connection settings.
	cli := exec.Command(build(t, "github.com/weirstream/weir/cmd/weir"), "offsets", "describe", "--group", group, "--output", "json")
	cli.Env = append(os.Environ(), s.clientEnv(group, pwFile)...)
	desc, err := cli.CombinedOutput()
	if err != nil {
		t.Fatalf("weir offsets describe over SASL_SSL: %v\n%s", err, desc)
	}
	if !strings.Contains(string(desc), in) {
		t.Fatalf("weir offsets describe shows no partition of %s:\n%s", in, desc)
	}
	seen = append(seen, string(desc))

	if err := j.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-j.done
	logs := j.out.String()
	if !strings.Contains(logs, `"kafka_security":"tls ca=`) || !strings.Contains(logs, "sasl SCRAM-SHA-512 user "+group) {
		t.Fatalf("the job's start does not say how it connects:\n%s", logs)
	}
	seen = append(seen, logs)
	for _, text := range seen {
		if strings.Contains(text, secretWord) {
			t.Fatalf("the secret shows in:\n%s", text)
		}
	}
}

// TestWrongPasswordStopsTheJob: a job whose password is wrong stops at
// start, saying that authentication failed, without showing the password.
func TestWrongPasswordStopsTheJob(t *testing.T) {
	s := secured(t)
	group := kafkatest.Name("secure-badpw")
	in, out := kafkatest.Name("secure-in"), kafkatest.Name("secure-out")
	for _, topic := range []string{in, out} {
		kafkatest.CreateNamedTopic(t, s.plain, topic, 1)
	}
	s.user(t, group)
	wrong := filepath.Join(s.dir, group+".wrong")
	if err := os.WriteFile(wrong, []byte("wrong-"+secretWord), 0o600); err != nil {
		t.Fatal(err)
	}
	j := startJob(t, append(s.clientEnv(group, wrong), "JOB_INPUT="+in, "JOB_OUTPUT="+out, "WEIR_GROUP="+group, "WEIR_METRICS_ADDR=")...)
	logs := j.exitWithin(t, time.Minute)
	if !strings.Contains(logs, "SASL_AUTHENTICATION_FAILED") && !strings.Contains(logs, "Authentication failed") {
		t.Fatalf("the job's error does not say authentication failed:\n%s", logs)
	}
	if strings.Contains(logs, secretWord) {
		t.Fatalf("the logs show the password:\n%s", logs)
	}
	t.Logf("wrong password: %s", lastErrorLine(logs))
}

// TestMissingACLsStopTheJob: for each ACL the README lists, a job whose
// user lacks just that one stops at start with an error naming the
// resource and the operation, and the kafka-acls command that grants it.
func TestMissingACLsStopTheJob(t *testing.T) {
	s := secured(t)
	for _, tc := range []struct {
		without string
		want    func(group, in, out string) []string
	}{
		{"source", func(g, in, out string) []string {
			return []string{`needs Read on topic "` + in + `"`, "--operation Read --topic " + in}
		}},
		{"sink", func(g, in, out string) []string {
			return []string{`needs Write on topic "` + out + `"`, "--operation Write --topic " + out}
		}},
		{"internal", func(g, in, out string) []string {
			return []string{`on topic "` + g + `-`, "--resource-pattern-type prefixed"}
		}},
		{"group", func(g, in, out string) []string { return []string{`needs Read on group "` + g + `"`, "--group " + g} }},
		{"txn", func(g, in, out string) []string {
			return []string{`on transactional-id "` + g + `-"`, "--transactional-id " + g + "- --resource-pattern-type prefixed"}
		}},
	} {
		t.Run("without "+tc.without, func(t *testing.T) {
			group := kafkatest.Name("secure-acl-" + tc.without)
			in, out := kafkatest.Name("secure-in"), kafkatest.Name("secure-out")
			for _, topic := range []string{in, out} {
				kafkatest.CreateNamedTopic(t, s.plain, topic, 1)
			}
			kafkatest.ProduceSync(t, kafkatest.Client(t, s.plain), &kgo.Record{Topic: in, Value: []byte("k")})
			pw := s.user(t, group)
			s.grant(t, "User:"+group, jobACLs(group, in, out, tc.without)...)
			j := startJob(t, append(s.clientEnv(group, pw), "JOB_INPUT="+in, "JOB_OUTPUT="+out, "WEIR_GROUP="+group, "WEIR_METRICS_ADDR=")...)
			logs := j.exitWithin(t, 90*time.Second)
			errLine := lastErrorLine(logs)
			for _, want := range tc.want(group, in, out) {
				if !strings.Contains(errLine, want) {
					t.Fatalf("the job's error does not say %q:\n%s", want, errLine)
				}
			}
			if !strings.Contains(errLine, "User:"+group) {
				t.Fatalf("the job's error does not name the principal User:%s:\n%s", group, errLine)
			}
			t.Logf("without %s: %s", tc.without, errLine)
		})
	}
}

// TestEveryMechanismConnects: PLAIN, SCRAM-SHA-256/512 and OAUTHBEARER
// (Kafka's unsecured JWT validator) authenticate over TLS through the
// settings a job reads.
func TestEveryMechanismConnects(t *testing.T) {
	s := secured(t)
	user := kafkatest.Name("secure-mech")
	pw := s.user(t, user)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: kadm.ScramSha256, Iterations: 4096, Password: user + "-" + secretWord}})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	plainPw := filepath.Join(s.dir, "plain.password")
	if err := os.WriteFile(plainPw, []byte("plain-"+secretWord), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(s.dir, "token")
	claims, _ := json.Marshal(map[string]any{"sub": "oauth-user", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	jwt := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.RawURLEncoding.EncodeToString(claims) + "."
	if err := os.WriteFile(token, []byte(jwt), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(s.dir, "ca.pem")
	for _, vars := range []map[string]string{
		{"WEIR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "WEIR_KAFKA_SASL_USERNAME": user, "WEIR_KAFKA_SASL_PASSWORD_FILE": pw},
		{"WEIR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "WEIR_KAFKA_SASL_USERNAME": user, "WEIR_KAFKA_SASL_PASSWORD_FILE": pw},
		{"WEIR_KAFKA_SASL_MECHANISM": "PLAIN", "WEIR_KAFKA_SASL_USERNAME": "plain-user", "WEIR_KAFKA_SASL_PASSWORD_FILE": plainPw},
		{"WEIR_KAFKA_SASL_MECHANISM": "OAUTHBEARER", "WEIR_KAFKA_SASL_TOKEN_FILE": token},
	} {
		vars["WEIR_KAFKA_TLS_CA_FILE"] = ca
		sec, err := kafkaconn.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.sasl...)}, sec.Opts()...)...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err = kadm.NewClient(cl).BrokerMetadata(ctx)
		cancel()
		cl.Close()
		if err != nil {
			t.Fatalf("%s: %v", sec, err)
		}
		t.Logf("connected: %s", sec)
	}
}

// lastErrorLine is the message and error of the job's last error-level
// log line.
func lastErrorLine(logs string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct{ Level, Msg, Error string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Level == "error" {
			last = l.Msg + ": " + l.Error
		}
	}
	return last
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

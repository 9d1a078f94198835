package runner

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Spec is one run of one query on one engine: what every engine's command
// line says, in the same words (see ContractArgs).
type Spec struct {
	Brokers       []string
	Query         string
	Input, Output string
	// Group is the consumer group (Kafka Streams' application id) whose
	// committed offsets on Input tell the runner how far the engine got.
	Group string
	// Guarantee is "exactly-once" or "at-least-once".
	Guarantee string
	// Interval is the checkpoint or commit interval.
	Interval    time.Duration
	Parallelism int
	// StateDir is the engine's own directory for local state and
	// checkpoints; the runner removes it after the run.
	StateDir string
	// Producer is how every engine batches what it writes.
	Producer Producer
}

// Producer is the producer batching every engine gets alike, so that no
// engine's figures come from batching the others were not given: franz-go
// (Weir, bare) and the Java client (Kafka Streams, Flink) have different
// defaults (franz-go 1 MB batches, 10 ms linger, snappy; Java 16 KB, 5 ms,
// no compression; Kafka Streams 100 ms linger).
type Producer struct {
	// BatchBytes is the largest batch of one partition: franz-go's
	// ProducerBatchMaxBytes, Java's batch.size.
	BatchBytes int
	// Linger is how long a batch waits to fill: ProducerLinger, linger.ms.
	Linger time.Duration
	// Compression is the batches' codec: none, gzip, snappy, lz4 or zstd
	// (ProducerBatchCompression, compression.type).
	Compression string
}

// DefaultProducer is franz-go's defaults, which Weir has always run with,
// applied to every engine.
var DefaultProducer = Producer{BatchBytes: 1000012, Linger: 10 * time.Millisecond, Compression: "snappy"}

// Validate reports a setting no engine takes.
func (p Producer) Validate() error {
	switch {
	case p.BatchBytes <= 0:
		return fmt.Errorf("producer batch bytes %d: want a positive size", p.BatchBytes)
	case p.Linger < 0 || p.Linger%time.Millisecond != 0:
		return fmt.Errorf("producer linger %v: want whole milliseconds, not negative", p.Linger)
	}
	if _, ok := codecs[p.Compression]; !ok {
		return fmt.Errorf("producer compression %q: want none, gzip, snappy, lz4 or zstd", p.Compression)
	}
	return nil
}

var codecs = map[string]kgo.CompressionCodec{
	"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
	"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
}

// KgoOpts are p as franz-go options.
func (p Producer) KgoOpts() ([]kgo.Opt, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return []kgo.Opt{
		kgo.ProducerBatchMaxBytes(int32(p.BatchBytes)),
		kgo.ProducerLinger(p.Linger),
		kgo.ProducerBatchCompression(codecs[p.Compression]),
	}, nil
}

// Args are p as the command line flags ContractArgs and Weir's run take.
func (p Producer) Args() []string {
	return []string{
		"--producer-batch-bytes", strconv.Itoa(p.BatchBytes),
		"--producer-linger-ms", strconv.FormatInt(p.Linger.Milliseconds(), 10),
		"--producer-compression", p.Compression,
	}
}

// ContractArgs is the command line every non-Weir engine takes:
//
//	--brokers B --query Q --input IN --output OUT --group G
//	--guarantee exactly-once|at-least-once --interval-ms N --parallelism P --state-dir DIR
//	--producer-batch-bytes N --producer-linger-ms N --producer-compression none|gzip|snappy|lz4|zstd
//
// The engine runs until SIGTERM, then stops cleanly and exits 0.
func ContractArgs(s Spec) []string {
	return append([]string{
		"--brokers", strings.Join(s.Brokers, ","),
		"--query", s.Query,
		"--input", s.Input,
		"--output", s.Output,
		"--group", s.Group,
		"--guarantee", s.Guarantee,
		"--interval-ms", strconv.FormatInt(s.Interval.Milliseconds(), 10),
		"--parallelism", strconv.Itoa(s.Parallelism),
		"--state-dir", s.StateDir,
	}, s.Producer.Args()...)
}

// Engine is a stream processor the runner measures.
type Engine struct {
	// Name names it in the tables: weir, kstreams, flink, bare.
	Name string
	// Queries are those it runs; nil is every query.
	Queries []string
	// Command returns the command running spec. Its process (after any
	// exec) is the one measured: CPU, memory.
	Command func(Spec) *exec.Cmd
}

// Runs reports whether e runs query q.
func (e Engine) Runs(q string) bool {
	if e.Queries == nil {
		return q != CopyQuery
	}
	for _, x := range e.Queries {
		if x == q {
			return true
		}
	}
	return false
}

// CopyQuery is the bare client's only "query": every record copied as it
// is.
const CopyQuery = "copy"

// Weir runs the queries as Weir jobs: `nexmark run` of the binary at
// self, configured as every Weir job is, by WEIR_* variables. With
// profileDir set, each run writes a CPU profile there, named after
// the run's group.
func Weir(self, profileDir string) Engine {
	return Engine{Name: "weir", Command: func(s Spec) *exec.Cmd {
		args := append([]string{"run", "-query", s.Query, "-in", s.Input, "-out", s.Output}, s.Producer.Args()...)
		if profileDir != "" {
			args = append(args, "-cpuprofile", filepath.Join(profileDir, s.Group+".pprof"))
		}
		cmd := exec.Command(self, args...)
		cmd.Env = append(os.Environ(),
			"WEIR_BROKERS="+strings.Join(s.Brokers, ","),
			"WEIR_GROUP="+s.Group,
			"WEIR_GUARANTEE="+s.Guarantee,
			"WEIR_CHECKPOINT_INTERVAL="+s.Interval.String(),
			"WEIR_STATE_DIR="+s.StateDir,
			"WEIR_METRICS_ADDR=",
			"WEIR_LOG_LEVEL=warn",
			"WEIR_ISOLATION=read_committed",
			"WEIR_START_OFFSET=earliest",
			// The memory the JVMs may take for their heap (-Xmx1g in
			// flink/run.sh and kstreams/run.sh), for the whole process:
			// Weir's default is 256 MiB, whose 1/32 for timers keeps
			// fewer than q5's in memory.
			"WEIR_MEMORY_LIMIT="+WeirMemoryLimit,
			"GOMAXPROCS="+strconv.Itoa(max(s.Parallelism, 1)),
		)
		return cmd
	}}
}

// WeirMemoryLimit is the memory budget of Weir's runs (WEIR_MEMORY_LIMIT):
// the JVM engines' largest heap.
const WeirMemoryLimit = "1GiB"

// BareEngine runs the ceiling, `nexmark bare` of the binary at self.
func BareEngine(self string) Engine {
	return Engine{Name: "bare", Queries: []string{CopyQuery}, Command: func(s Spec) *exec.Cmd {
		cmd := exec.Command(self, append([]string{"bare"}, ContractArgs(s)...)...)
		cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(max(s.Parallelism, 1)))
		return cmd
	}}
}

// Script runs an engine through a launcher script taking ContractArgs,
// which must exec the engine's process (bench/nexmark/kstreams/run.sh,
// bench/nexmark/flink/run.sh).
func Script(name, script string) Engine {
	return Engine{Name: name, Command: func(s Spec) *exec.Cmd {
		return exec.Command("bash", append([]string{script}, ContractArgs(s)...)...)
	}}
}

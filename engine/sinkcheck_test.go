package engine_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/observe"
)

// pastRetention is an observer counting outputs past their topic's
// retention.
type pastRetention struct {
	observe.Nop
	mu sync.Mutex
	n  map[string]int
}

func (p *pastRetention) SinkRecordsPastRetention(topic string, n int) {
	p.mu.Lock()
	p.n[topic] += n
	p.mu.Unlock()
}

func (p *pastRetention) get(topic string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[topic]
}

// TestSinkChecksOutputsAgainstTheirTopic, against the real broker: an output
// larger than its topic's max.message.bytes meets the sink's error policy
// (here: dead-lettered) instead of failing the checkpoint again and again,
// and outputs stamped older than the topic's retention.ms are counted,
// unless the sink stamps processing time.
func TestSinkChecksOutputsAgainstTheirTopic(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "sinkcheck-in", 1)
	out := kafkatest.Name("sinkcheck-out")
	fresh := kafkatest.Name("sinkcheck-fresh")
	adm := kadm.NewClient(kafkatest.Client(t, brokers))
	for _, topic := range []string{out, fresh} {
		resp, err := adm.CreateTopic(context.Background(), 1, 1, map[string]*string{
			"max.message.bytes": kadm.StringPtr("2000"), "retention.ms": kadm.StringPtr("3600000"),
		}, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), topic) })
	}
	group := kafkatest.Name("sinkcheck")
	old := time.Now().Add(-48 * time.Hour)
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers),
		&kgo.Record{Topic: in, Key: []byte("a"), Value: []byte("small and old"), Timestamp: old},
		&kgo.Record{Topic: in, Key: []byte("b"), Value: []byte(strings.Repeat("x", 5000))},
		&kgo.Record{Topic: in, Key: []byte("c"), Value: []byte("small and new")},
	)
	obs := &pastRetention{n: map[string]int{}}
	job := engine.NewJob("sinkcheck", engine.WithBrokers(brokers...), engine.WithGroup(group), engine.WithStateDir(t.TempDir()),
		engine.WithMetricsAddr(""), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithLogLevel("warn"),
		engine.WithObserver(obs))
	src := connectors.KafkaSource(job, in, codec.String())
	connectors.KafkaSink(src, out, codec.String(), connectors.WithSinkErrorPolicy(engine.DeadLetter))
	connectors.KafkaSink(src, fresh, codec.String(), connectors.WithProcessingTime(), connectors.WithSinkErrorPolicy(engine.Skip))
	stop := runJob(t, job)
	if got := values(t, brokers, out, 2); len(got) != 2 || got[0] != "small and old" || got[1] != "small and new" {
		t.Fatalf("outputs %q, want the two small records", got)
	}
	dlq := kafkatest.ReadAll(t, brokers, group+"-dlq", 1, time.Minute)
	if len(dlq) != 1 || string(dlq[0].Key) != "b" {
		t.Fatalf("dead letters: %d, want the large record", len(dlq))
	}
	for _, h := range dlq[0].Headers {
		if h.Key == engine.HeaderErrorClass && string(h.Value) != engine.ClassTooLarge {
			t.Errorf("dead letter class %q, want %q", h.Value, engine.ClassTooLarge)
		}
	}
	kafkatest.Eventually(t, 10*time.Second, "the old output counted past retention", func() bool { return obs.get(out) == 1 })
	freshOut := kafkatest.ReadAll(t, brokers, fresh, 2, time.Minute)
	if len(freshOut) != 2 || time.Since(freshOut[0].Timestamp) > time.Hour {
		t.Fatalf("processing-time sink wrote %d records, the first stamped %v", len(freshOut), freshOut[0].Timestamp)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := obs.get(fresh); n != 0 {
		t.Errorf("%d outputs of the processing-time sink counted past retention", n)
	}
	if n := obs.get(out); n != 1 {
		t.Errorf("%d outputs counted past retention, want 1", n)
	}
}

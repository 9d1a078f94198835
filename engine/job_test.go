package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/weirstream/weir/codec"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/operators"
)

type event struct {
	User string `json:"user"`
	Seq  int    `json:"seq"`
	Bot  bool   `json:"bot"`
}

type enriched struct {
	User string `json:"user"`
	Seq  int    `json:"seq"`
	Tag  string `json:"tag"`
}

// buildJob is the stateless job the tests run: drop bots, tag the rest.
func buildJob(name, in, out string, opts ...engine.Opt) *engine.Job {
	job := engine.NewJob(name, opts...)
	views := connectors.KafkaSource(job, in, codec.JSON[event]())
	humans := operators.Filter(views, func(e event) bool { return !e.Bot })
	tagged := operators.Map(humans, func(e event) (enriched, error) {
		return enriched{User: e.User, Seq: e.Seq, Tag: "seen"}, nil
	})
	connectors.KafkaSink(tagged, out, codec.JSON[enriched]())
	return job
}

func runJob(t *testing.T, job *engine.Job) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			t.Fatal("job did not stop within 60s")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestStatelessJobOnFakeBroker(t *testing.T) {
	brokers := kafkatest.Fake(t, 4, "views", "tagged")
	cl := kafkatest.Client(t, brokers, kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	const n = 2000
	var recs []*kgo.Record
	for i := range n {
		e := event{User: "u" + strconv.Itoa(i%50), Seq: i, Bot: i%10 == 0}
		b, _ := json.Marshal(e)
		recs = append(recs, &kgo.Record{Topic: "views", Key: []byte(e.User), Value: b})
	}
	kafkatest.ProduceSync(t, cl, recs...)

	job := buildJob("stateless", "views", "tagged", engine.WithBrokers(brokers...), engine.WithMetricsAddr(""),
		engine.WithCheckpointInterval(50*time.Millisecond))
	stop := runJob(t, job)
	out := kafkatest.ReadAll(t, brokers, "tagged", n-n/10, 30*time.Second)
	if len(out) != n-n/10 {
		t.Fatalf("got %d outputs, want %d", len(out), n-n/10)
	}
	last := map[string]int{}
	for _, r := range out {
		var e enriched
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != e.User || e.Tag != "seen" {
			t.Fatalf("bad output %s => %+v", r.Key, e)
		}
		if prev, ok := last[e.User]; ok && e.Seq <= prev {
			t.Fatalf("user %s: seq %d after %d", e.User, e.Seq, prev)
		}
		last[e.User] = e.Seq
	}
	if err := stop(); err != nil {
		t.Fatalf("clean stop returned %v", err)
	}
	// After a clean stop every input offset is committed.
	total := int64(0)
	for _, off := range kafkatest.CommittedOffsets(t, brokers, "stateless", "views") {
		total += off
	}
	if total != n {
		t.Fatalf("committed offsets sum to %d, want %d", total, n)
	}
}

func TestPoisonRecordStopsAtItsOffset(t *testing.T) {
	brokers := kafkatest.Fake(t, 1, "views", "tagged")
	cl := kafkatest.Client(t, brokers)
	var recs []*kgo.Record
	for i := range 10 {
		v := fmt.Sprintf(`{"user":"u","seq":%d}`, i)
		if i == 6 {
			v = `{"user":` // truncated
		}
		recs = append(recs, &kgo.Record{Topic: "views", Partition: 0, Value: []byte(v)})
	}
	kafkatest.ProduceSync(t, cl, recs...)
	job := buildJob("poison", "views", "tagged", engine.WithBrokers(brokers...), engine.WithMetricsAddr(""), engine.WithStateDir(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := job.Run(ctx)
	var re *engine.RecordError
	if !errors.As(err, &re) {
		t.Fatalf("Run returned %v, want a *RecordError", err)
	}
	if re.Topic != "views" || re.Partition != 0 || re.Offset != 6 || re.Operator != "source:views" {
		t.Fatalf("error names %s/%d@%d in %s, want views/0@6 in source:views", re.Topic, re.Partition, re.Offset, re.Operator)
	}
	if got := kafkatest.CommittedOffsets(t, brokers, "poison", "views")[0]; got != 6 {
		t.Fatalf("committed offset %d, want 6 (the poison record, so nothing after it)", got)
	}
	if out := kafkatest.ReadAll(t, brokers, "tagged", 7, 2*time.Second); len(out) != 6 {
		t.Fatalf("got %d outputs, want exactly the 6 before the poison record", len(out))
	}
}

func TestMissingTopicIsATopologyError(t *testing.T) {
	brokers := kafkatest.Fake(t, 1, "views")
	job := buildJob("missing", "views", "nowhere", engine.WithBrokers(brokers...), engine.WithMetricsAddr(""), engine.WithStateDir(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := job.Run(ctx); !errors.Is(err, engine.ErrTopology) {
		t.Fatalf("Run returned %v, want ErrTopology", err)
	}
}

func TestBadConfigIsAConfigError(t *testing.T) {
	job := buildJob("badcfg", "a", "b", engine.WithCheckpointInterval(0), engine.WithStartOffset("middle"))
	err := job.Run(context.Background())
	if !errors.Is(err, engine.ErrConfig) {
		t.Fatalf("Run returned %v, want ErrConfig", err)
	}
}

func TestJoinedTopicsMustBeCoPartitioned(t *testing.T) {
	brokers := kafkatest.Fake(t, 4, "orders")
	cl := kafkatest.Client(t, brokers)
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "profiles"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 4, 1, nil, "out"); err != nil {
		t.Fatal(err)
	}
	job := engine.NewJob("copart", engine.WithBrokers(brokers...), engine.WithMetricsAddr(""), engine.WithStateDir(t.TempDir()))
	orders := connectors.KafkaSource(job, "orders", codec.JSON[event]())
	joined := operators.JoinTable(operators.KeyBy(orders, func(e event) string { return e.User }), "profiles", codec.String(),
		func(_ string, e event, _ string, _ bool) (event, error) { return e, nil })
	connectors.KafkaSink(joined, "out", codec.JSON[event]())
	err := job.Run(ctx)
	if !errors.Is(err, engine.ErrTopology) || !strings.Contains(err.Error(), "profiles has 3 partitions") {
		t.Fatalf("Run returned %v, want a co-partitioning ErrTopology naming profiles", err)
	}
}

// TestInternalTopicCreationWaitsOutTheBroker: a replica that starts while
// the broker drops its connections or answers "not controller" (as during
// a broker restart) retries creating its repartition topic instead of
// exiting, and then runs.
func TestInternalTopicCreationWaitsOutTheBroker(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "views", "counted"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	var failed atomic.Int32
	c.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		switch failed.Add(1) {
		case 1, 2: // the connection drops
			return nil, errors.New("broker going down"), true
		case 3: // the broker is back but has no controller yet
			creq := req.(*kmsg.CreateTopicsRequest)
			resp := creq.ResponseKind().(*kmsg.CreateTopicsResponse)
			for _, rt := range creq.Topics {
				st := kmsg.NewCreateTopicsResponseTopic()
				st.Topic = rt.Topic
				st.ErrorCode = kerr.NotController.Code
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil, true
		}
		c.DropControl()
		return nil, nil, false
	})
	kafkatest.ProduceSync(t, kafkatest.Client(t, brokers), &kgo.Record{Topic: "views", Value: []byte(`{"user":"a","seq":1}`)})

	job := engine.NewJob("retry-create", engine.WithBrokers(brokers...), engine.WithMetricsAddr(""), engine.WithStateDir(t.TempDir()),
		engine.WithCheckpointInterval(20*time.Millisecond))
	views := connectors.KafkaSource(job, "views", codec.JSON[event]())
	users := operators.Map(operators.KeyBy(views, func(e event) string { return e.User }).Stream, func(e event) (string, error) { return e.User, nil })
	connectors.KafkaSink(users, "counted", codec.String())
	runJob(t, job)
	if out := kafkatest.ReadAll(t, brokers, "counted", 1, 30*time.Second); len(out) != 1 {
		t.Fatalf("got %d outputs, want 1", len(out))
	}
	if n := failed.Load(); n < 4 {
		t.Fatalf("CreateTopics was asked %d times, want the 3 failures and a success", n)
	}
}

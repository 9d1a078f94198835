package registry_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/weirstream/weir/codec/avro"
	"github.com/weirstream/weir/codec/protobuf"
	"github.com/weirstream/weir/codec/registry"
	"github.com/weirstream/weir/connectors"
	"github.com/weirstream/weir/engine"
	"github.com/weirstream/weir/internal/kafkatest"
	"github.com/weirstream/weir/internal/testpb"
	"github.com/weirstream/weir/operators"
)

// registryURL returns the real schema registry's Confluent API base URL
// (scripts/registry.sh starts one for make test).
func registryURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("SCHEMA_REGISTRY_URL")
	if u == "" {
		if os.Getenv("WEIR_REQUIRE_REGISTRY") == "1" {
			t.Fatal("SCHEMA_REGISTRY_URL is not set but WEIR_REQUIRE_REGISTRY=1: this test needs the real schema registry")
		}
		t.Skip("needs a real schema registry: run `make test`, or set SCHEMA_REGISTRY_URL")
	}
	return u
}

const (
	paymentV1 = `{"type":"record","name":"Payment","namespace":"weir.test","fields":[
		{"name":"account","type":"string"},{"name":"amount_cents","type":"long"}]}`
	paymentV2 = `{"type":"record","name":"Payment","namespace":"weir.test","fields":[
		{"name":"account","type":"string"},{"name":"amount_cents","type":"long"},
		{"name":"currency","type":"string","default":"EUR"}]}`
	receiptSchema = `{"type":"record","name":"Receipt","namespace":"weir.test","fields":[
		{"name":"account","type":"string"},{"name":"amount","type":"string"},{"name":"via","type":"string"}]}`
)

type paymentV1Go struct {
	Account string `avro:"account"`
	Amount  int64  `avro:"amount_cents"`
}

type payment struct {
	Account  string `avro:"account"`
	Amount   int64  `avro:"amount_cents"`
	Currency string `avro:"currency"`
}

type receipt struct {
	Account string `avro:"account"`
	Amount  string `avro:"amount"`
	Via     string `avro:"via"`
}

// paymentV1Proto returns the first version of testpb.Payment (no
// currency) as a dynamic message type, and its .proto source: what an
// older producer writes the mid topic with.
func paymentV1Proto(t *testing.T) (newMessage func() *dynamicpb.Message, source string) {
	t.Helper()
	fd := protodesc.ToFileDescriptorProto(testpb.File_payment_proto)
	fd.Name = proto.String("payment_v1.proto")
	fd.Package = proto.String("weir.test.v1")
	fd.MessageType = fd.MessageType[:1]
	fd.MessageType[0].Field = fd.MessageType[0].Field[:2]
	f, err := protodesc.NewFile(fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	md := f.Messages().Get(0)
	return func() *dynamicpb.Message { return dynamicpb.NewMessage(md) },
		"syntax = \"proto3\";\npackage weir.test.v1;\nmessage Payment {\n  string account = 1;\n  int64 amount_cents = 2;\n}\n"
}

// TestAvroToProtobufAndBackWithARealRegistry runs a job against the real
// broker and the real schema registry that reads Avro payments and writes
// them as Protobuf, and reads that Protobuf back and writes Avro receipts.
// Mid-stream the payments' producer moves to version 2 of their schema (a
// currency added with a default): records of both versions come out, the
// older with the default. An older Protobuf producer's record reads too.
// A record whose schema id the registry does not know goes to the
// dead-letter topic, and the job goes on.
func TestAvroToProtobufAndBackWithARealRegistry(t *testing.T) {
	url := registryURL(t)
	brokers := kafkatest.Brokers(t)
	in := kafkatest.CreateTopic(t, brokers, "sr-payments", 1)
	mid := kafkatest.CreateTopic(t, brokers, "sr-payments-pb", 1)
	out := kafkatest.CreateTopic(t, brokers, "sr-receipts", 1)
	group := kafkatest.Name("sr")
	reg, err := registry.New([]string{url})
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	job := engine.NewJob("sr", engine.WithBrokers(brokers...), engine.WithGroup(group), engine.WithStateDir(t.TempDir()),
		engine.WithMetricsAddr(""), engine.WithCheckpointInterval(100*time.Millisecond), engine.WithLogLevel("warn"),
		engine.WithErrorPolicy(engine.DeadLetter))
	payments, err := avro.New[payment](reg, registry.TopicValue(in), paymentV2)
	must(err)
	pb, err := protobuf.New[*testpb.Payment](reg, registry.TopicValue(mid), testpb.Schema)
	must(err)
	receipts, err := avro.New[receipt](reg, registry.TopicValue(out), receiptSchema)
	must(err)
	toProto := operators.Map(connectors.KafkaSource(job, in, payments), func(p payment) (*testpb.Payment, error) {
		return &testpb.Payment{Account: p.Account, AmountCents: p.Amount, Currency: p.Currency}, nil
	})
	connectors.KafkaSink(toProto, mid, pb)
	toAvro := operators.Map(connectors.KafkaSource(job, mid, pb), func(p *testpb.Payment) (receipt, error) {
		return receipt{Account: p.GetAccount(), Amount: fmt.Sprintf("%d %s", p.GetAmountCents(), p.GetCurrency()), Via: "protobuf"}, nil
	})
	connectors.KafkaSink(toAvro, out, receipts)

	producer := kafkatest.Client(t, brokers)
	produce := func(topic string, values ...[]byte) {
		for _, v := range values {
			kafkatest.ProduceSync(t, producer, &kgo.Record{Topic: topic, Value: v})
		}
	}
	v1, err := avro.New[paymentV1Go](reg, registry.TopicValue(in), paymentV1)
	must(err)
	enc := func(b []byte, err error) []byte {
		t.Helper()
		must(err)
		return b
	}
	// Version 1 records are there before the job starts.
	produce(in, enc(v1.Encode(paymentV1Go{"a", 100})), enc(v1.Encode(paymentV1Go{"b", 200})))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- job.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("job: %v", err)
		}
	}()

	// A record naming a schema id the registry never gave out.
	bogus := enc(registry.AppendHeader(nil, 987654321, nil))
	bogus = append(bogus, 2, 'x')
	produce(in, bogus)
	// The producer moves to version 2: registered now, mid-stream.
	v2, err := avro.New[payment](reg, registry.TopicValue(in), paymentV2)
	must(err)
	produce(in, enc(v2.Encode(payment{"c", 300, "USD"})), enc(v2.Encode(payment{"d", 400, "CHF"})))
	// An older Protobuf producer, its schema under a subject of its own.
	newV1, v1Source := paymentV1Proto(t)
	id, err := reg.Register(context.Background(), "sr-payments-pb-v1", sr.Schema{Schema: v1Source, Type: sr.TypeProtobuf})
	must(err)
	m := newV1()
	m.Set(m.Descriptor().Fields().ByName("account"), protoreflect.ValueOf("e"))
	m.Set(m.Descriptor().Fields().ByName("amount_cents"), protoreflect.ValueOf(int64(500)))
	old := enc(registry.AppendHeader(nil, id, []int{0}))
	old = enc(proto.MarshalOptions{}.MarshalAppend(old, m))
	produce(mid, old)

	var got []string
	for _, r := range kafkatest.ReadAll(t, brokers, out, 5, time.Minute) {
		rc, err := receipts.Decode(r.Value)
		must(err)
		got = append(got, rc.Account+": "+rc.Amount+" via "+rc.Via)
	}
	slices.Sort(got)
	want := []string{"a: 100 EUR via protobuf", "b: 200 EUR via protobuf", "c: 300 USD via protobuf", "d: 400 CHF via protobuf", "e: 500  via protobuf"}
	if !slices.Equal(got, want) {
		t.Fatalf("receipts %q, want %q", got, want)
	}
	dead := kafkatest.ReadAll(t, brokers, group+"-dlq", 1, time.Minute)
	if len(dead) != 1 || string(dead[0].Value) != string(bogus) {
		t.Fatalf("dead letters %v, want the record with the unknown schema id", dead)
	}
	var msg string
	for _, h := range dead[0].Headers {
		if h.Key == "weir.error.message" {
			msg = string(h.Value)
		}
	}
	if !strings.Contains(msg, "schema id unknown") {
		t.Fatalf("dead letter's error %q, want it to say the schema id is unknown", msg)
	}
}

// TestIncompatibleSchemaIsReportedWithTheRegistrysReason: a codec whose
// schema breaks its subject's compatibility rule (the real registry runs
// BACKWARD, as Confluent's default) fails to encode with
// ErrIncompatible, naming the subject and carrying the registry's reason,
// rather than writing records its readers cannot read.
func TestIncompatibleSchemaIsReportedWithTheRegistrysReason(t *testing.T) {
	reg, err := registry.New([]string{registryURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	subject := registry.TopicValue(kafkatest.Name("sr-compat"))
	v2, err := avro.New[payment](reg, subject, paymentV2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Encode(payment{"a", 1, "EUR"}); err != nil {
		t.Fatal(err)
	}
	// amount_cents becomes a string: records written before cannot be read.
	broken := strings.Replace(paymentV2, `"name":"amount_cents","type":"long"`, `"name":"amount_cents","type":"string"`, 1)
	type brokenPayment struct {
		Account  string `avro:"account"`
		Amount   string `avro:"amount_cents"`
		Currency string `avro:"currency"`
	}
	c, err := avro.New[brokenPayment](reg, subject, broken)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Encode(brokenPayment{"a", "1", "EUR"})
	if !errors.Is(err, registry.ErrIncompatible) || !strings.Contains(err.Error(), subject) {
		t.Fatalf("encoding with an incompatible schema: %v, want ErrIncompatible naming %s", err, subject)
	}
	t.Log(err)
}

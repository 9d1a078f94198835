package avro_test

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/weirstream/weir/codec/avro"
	"github.com/weirstream/weir/codec/registry"
)

const (
	paymentV1 = `{"type":"record","name":"Payment","namespace":"weir.test","fields":[
		{"name":"account","type":"string"},{"name":"amount_cents","type":"long"}]}`
	paymentV2 = `{"type":"record","name":"Payment","namespace":"weir.test","fields":[
		{"name":"account","type":"string"},{"name":"amount_cents","type":"long"},
		{"name":"currency","type":"string","default":"EUR"}]}`
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

func newRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	fake := srfake.New()
	t.Cleanup(fake.Close)
	reg, err := registry.New([]string{fake.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// A reader on version 2 of a schema reads records written with version 1
// (the field it added takes its default) and with version 2, each by the
// schema id in the record.
func TestAvroReadsEveryVersionOfItsSubject(t *testing.T) {
	reg := newRegistry(t)
	v1, err := avro.New[paymentV1Go](reg, "payments-value", paymentV1)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := avro.New[payment](reg, "payments-value", paymentV2)
	if err != nil {
		t.Fatal(err)
	}
	old, err := v1.Encode(paymentV1Go{Account: "a", Amount: 250})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := v2.Encode(payment{Account: "b", Amount: 100, Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	if old[0] != 0 || cur[0] != 0 || string(old[1:5]) == string(cur[1:5]) {
		t.Fatalf("headers % x and % x: want magic 0 and two schema ids", old[:5], cur[:5])
	}
	for _, tc := range []struct {
		b    []byte
		want payment
	}{{old, payment{"a", 250, "EUR"}}, {cur, payment{"b", 100, "USD"}}} {
		got, err := v2.Decode(tc.b)
		if err != nil || got != tc.want {
			t.Fatalf("decoded %+v (%v), want %+v", got, err, tc.want)
		}
	}
}

// Bad input is a decode error naming the cause, never a panic: no header,
// an id the registry does not know, a payload that does not match.
func TestAvroDecodeErrors(t *testing.T) {
	reg := newRegistry(t)
	c, err := avro.New[payment](reg, "payments-value", paymentV2)
	if err != nil {
		t.Fatal(err)
	}
	good, err := c.Encode(payment{Account: "a", Amount: 1, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	unknown, _ := registry.AppendHeader(nil, 424242, nil)
	for name, b := range map[string][]byte{
		"empty":         nil,
		"no magic byte": []byte(`{"account":"a"}`),
		"unknown id":    append(unknown, good[5:]...),
		"truncated":     good[:len(good)-2],
	} {
		_, err := c.Decode(b)
		if err == nil {
			t.Errorf("%s: decoded without error", name)
		}
		if name == "unknown id" && !errors.Is(err, registry.ErrUnknownSchema) {
			t.Errorf("unknown id: %v, want ErrUnknownSchema", err)
		}
	}
	if _, err := avro.New[payment](reg, "x-value", `{"type":"record"`); err == nil {
		t.Error("a schema that does not parse was accepted")
	}
}

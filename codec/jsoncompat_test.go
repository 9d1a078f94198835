package codec

import (
	stdjson "encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

type compatInner struct {
	N int `json:"n"`
}

type compatEvent struct {
	ID       string             `json:"id"`
	Amount   float64            `json:"amount"`
	Count    int64              `json:"count,omitempty"`
	At       time.Time          `json:"at"`
	Tags     []string           `json:"tags"`
	Attrs    map[string]int     `json:"attrs"`
	Inner    *compatInner       `json:"inner"`
	Raw      stdjson.RawMessage `json:"raw,omitempty"`
	Ignored  string             `json:"-"`
	Str      int                `json:"str,string"`
	Any      any                `json:"any,omitempty"`
	Embedded                    // promoted fields
	private  int
}

type Embedded struct {
	Note string `json:"note"`
}

// codec.JSON must read and write what encoding/json does for the structs
// users tag for it: the same bytes out, the same values in, errors where
// encoding/json has them.
func TestJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 6_000_000, time.FixedZone("x", 3600))
	values := []compatEvent{
		{},
		{ID: "<a&b>", Amount: 1.5e-7, Count: 3, At: at, Tags: []string{"x", ""}, Attrs: map[string]int{"b": 2, "a": 1, "c": 3},
			Inner: &compatInner{N: -1}, Raw: stdjson.RawMessage(`{"k":[1,2]}`), Ignored: "no", Str: 42, Embedded: Embedded{Note: "é\u2028\x01"}, private: 9},
		{ID: "\xff invalid utf-8", Amount: math.MaxFloat64, Tags: []string{}},
		{Any: map[string]any{"z": []any{1, "x", true, nil, 2.5}, "a": map[string]any{}}},
	}
	c := JSON[compatEvent]()
	for i, v := range values {
		want, werr := stdjson.Marshal(v)
		got, gerr := c.Encode(v)
		if (werr == nil) != (gerr == nil) || string(got) != string(want) {
			t.Errorf("value %d: encoded %s (%v), encoding/json %s (%v)", i, got, gerr, want, werr)
		}
	}
	inputs := []string{
		`{"id":"a","amount":1,"at":"2024-01-02T03:04:05Z","tags":null,"attrs":{"x":1},"inner":{"n":2},"note":"n","str":"7"}`,
		`{"ID":"case-insensitive","AMOUNT":2}`,
		`{"id":"dup","id":"last wins"}`,
		`{"unknown":{"deep":[1,{"x":null}]},"id":"skipped unknown"}`,
		` {"id":"spaces"} `,
		`{"id":"\u00e9\ud83d\ude00 escapes \" \\ \/"}`,
		`{"count":1.5}`,
		`{"count":"1"}`,
		`{"amount":1e400}`,
		`{"id":"a"} trailing`,
		`{"id":"a"`,
		`[]`,
		`null`,
		`{"str":7}`,
		`{"at":"not a time"}`,
		`{"tags":["a",1]}`,
		`{"any":{"a":[1,"x",true,null,{"b":1.5e3}]}}`,
		`{"count":9223372036854775808}`,
		`{"inner":null,"attrs":null}`,
	}
	for _, in := range inputs {
		var want compatEvent
		werr := stdjson.Unmarshal([]byte(in), &want)
		got, gerr := c.Decode([]byte(in))
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%s: error %v, encoding/json's %v", in, gerr, werr)
			continue
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decoded %+v, encoding/json %+v", in, got, want)
		}
	}
}

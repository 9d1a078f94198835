package codec_test

import (
	"fmt"

	"github.com/weirstream/weir/codec"
)

type order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

// JSON is the default codec of records: encoding/json, and a clear error
// (which makes the record a poison record, met by the error policy) for
// bytes that do not decode.
func ExampleJSON() {
	c := codec.JSON[order]()
	b, _ := c.Encode(order{ID: "o1", Total: 42})
	fmt.Println(string(b))
	o, err := c.Decode(b)
	fmt.Println(o, err)
	_, err = c.Decode([]byte("not json"))
	fmt.Println(err != nil)
	// Output:
	// {"id":"o1","total":42}
	// {o1 42} <nil>
	// true
}

// Key encodes keys so that equal keys have equal bytes: what a keyed
// stream partitions by and keeps state under.
func ExampleKey() {
	c := codec.Key[int64]()
	b, _ := c.Encode(7)
	k, _ := c.Decode(b)
	fmt.Println(len(b), k)
	// Output:
	// 8 7
}

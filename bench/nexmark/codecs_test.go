package nexmark

import (
	"reflect"
	"testing"
)

// TestQueryCodecs round-trips the binary codecs queries keep state and
// repartition records in, and checks that they refuse what they did not
// write.
func TestQueryCodecs(t *testing.T) {
	rows := []Q7Result{
		{Auction: 1000, Bidder: 1001, Price: 99_999_999, DateTime: DateTimeOf(BaseTime), Extra: "abc"},
		{Auction: -1, Bidder: 0, Price: 0, DateTime: -5, Extra: ""},
		{Auction: 1 << 62, Bidder: -(1 << 62), Price: 7, DateTime: 1 << 50, Extra: "é\x00\""},
	}
	for _, r := range rows {
		b, err := q7RowCodec{}.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := q7RowCodec{}.Decode(b)
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("q7 row %+v: decoded %+v, %v", r, got, err)
		}
		for i := range len(b) {
			if _, err := (q7RowCodec{}).Decode(b[:i]); err == nil {
				t.Errorf("q7 row: prefix of %d bytes decoded", i)
			}
		}
	}
	for _, a := range []q7Acc{{Max: 5, Bids: []Q7Result{}}, {Max: 7, Bids: rows}} {
		b, err := q7AccCodec{}.Encode(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := q7AccCodec{}.Decode(b)
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("q7 acc %+v: decoded %+v, %v", a, got, err)
		}
		if _, err := (q7AccCodec{}).Decode(append(b, 0)); err == nil {
			t.Error("q7 acc: trailing byte decoded")
		}
	}
	for _, c := range []q5Count{
		{Auction: 1234, Num: 56, End: DateTimeOf(BaseTime).Time().UnixMilli()},
		{Auction: 1234, Num: 56, End: DateTimeOf(BaseTime).Time().UnixMilli(), Ties: []int64{7, 1 << 40}},
	} {
		b, err := q5CountCodec{}.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := (q5CountCodec{}).Decode(b); err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("q5 count %+v: decoded %+v, %v", c, got, err)
		}
		for _, bad := range [][]byte{b[1:], b[:23], append(b, 0)} {
			if got, err := (q5CountCodec{}).Decode(bad); err == nil {
				t.Errorf("q5 count: %d bytes decoded as %+v", len(bad), got)
			}
		}
	}
	for _, c := range []q11Bids{{Bidder: 1001, At: DateTimeOf(BaseTime).Time().UnixMilli(), N: 7}, {Bidder: -1, At: -5, N: 1 << 40}} {
		b, err := q11BidsCodec{}.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := (q11BidsCodec{}).Decode(b); err != nil || got != c {
			t.Errorf("q11 bids %+v: decoded %+v, %v", c, got, err)
		}
		for _, bad := range [][]byte{b[1:], append(b, 0), nil} {
			if got, err := (q11BidsCodec{}).Decode(bad); err == nil {
				t.Errorf("q11 bids: %d bytes decoded as %+v", len(bad), got)
			}
		}
	}
}

// TestQ5MergeTop covers the local top of q5's counts: the higher count
// wins, and ties keep every auction, in the order they came.
func TestQ5MergeTop(t *testing.T) {
	c := func(a, n int64, ties ...int64) q5Count { return q5Count{Auction: a, Num: n, End: 10, Ties: ties} }
	for _, tc := range []struct {
		in   []q5Count
		want q5Count
	}{
		{[]q5Count{c(1, 5), c(2, 7)}, c(2, 7)},
		{[]q5Count{c(1, 7), c(2, 5)}, c(1, 7)},
		{[]q5Count{c(1, 7), c(2, 7), c(3, 2), c(4, 7, 5, 6)}, c(1, 7, 2, 4, 5, 6)},
		{[]q5Count{c(1, 7, 2), c(3, 8)}, c(3, 8)},
	} {
		got := tc.in[0]
		for _, x := range tc.in[1:] {
			got = mergeTop(got, x)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("merging %+v: %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestQ7HighestMerge covers Merge, which tumbling windows never call.
func TestQ7HighestMerge(t *testing.T) {
	var h q7Highest
	a := h.Add(h.Zero(), Q7Result{Auction: 1, Price: 10})
	b := h.Add(h.Add(h.Zero(), Q7Result{Auction: 2, Price: 10}), Q7Result{Auction: 3, Price: 5})
	c := h.Add(h.Zero(), Q7Result{Auction: 4, Price: 20})
	for _, tc := range []struct {
		x, y q7Acc
		want []int64
	}{
		{a, b, []int64{1, 2}}, {b, a, []int64{2, 1}}, {a, c, []int64{4}}, {c, a, []int64{4}},
		{a, h.Zero(), []int64{1}}, {h.Zero(), a, []int64{1}},
	} {
		var got []int64
		for _, r := range h.Result(h.Merge(tc.x, tc.y)) {
			got = append(got, r.Auction)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Merge(%v, %v) has auctions %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
}

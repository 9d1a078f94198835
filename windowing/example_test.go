package windowing_test

import (
	"fmt"
	"time"

	"github.com/weirstream/weir/windowing"
)

var at = windowing.MillisOf(time.Date(2024, 1, 1, 12, 7, 30, 0, time.UTC))

// A tumbling window of 10 minutes holds 12:07:30 in [12:00, 12:10); the
// window fires when the watermark passes its last millisecond.
func ExampleTumbling() {
	for _, w := range windowing.Tumbling(10*time.Minute).Assign(nil, at) {
		fmt.Println(w.Start, w.End, w.MaxTimestamp())
	}
	// Output:
	// 2024-01-01T12:00:00.000Z 2024-01-01T12:10:00.000Z 2024-01-01T12:09:59.999Z
}

// Sliding windows of 10 minutes every 5 hold a timestamp twice.
func ExampleSliding() {
	for _, w := range windowing.Sliding(10*time.Minute, 5*time.Minute).Assign(nil, at) {
		fmt.Println(w.Start, w.End)
	}
	// Output:
	// 2024-01-01T12:00:00.000Z 2024-01-01T12:10:00.000Z
	// 2024-01-01T12:05:00.000Z 2024-01-01T12:15:00.000Z
}

// Session windows merge when they overlap or touch, as Flink's do: with a
// 5-minute gap, records at 12:00, 12:03 and 12:20 make two sessions.
func ExampleMergeWindows() {
	sessions := windowing.Sessions(5 * time.Minute)
	var ws []windowing.Window
	for _, m := range []int{0, 3, 20} {
		ts := windowing.MillisOf(time.Date(2024, 1, 1, 12, m, 0, 0, time.UTC))
		ws = append(ws, sessions.Assign(nil, ts)...)
	}
	merged, members := windowing.MergeWindows(ws)
	for i, w := range merged {
		fmt.Println(w.Start, w.End, members[i])
	}
	// Output:
	// 2024-01-01T12:00:00.000Z 2024-01-01T12:08:00.000Z [0 1]
	// 2024-01-01T12:20:00.000Z 2024-01-01T12:25:00.000Z [2]
}

// A record is late when its timestamp is at or before the watermark.
func ExampleIsLate() {
	wm := windowing.MillisOf(time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC))
	fmt.Println(windowing.IsLate(wm-1, wm), windowing.IsLate(wm, wm), windowing.IsLate(wm+1, wm))
	fmt.Println(windowing.IsLate(wm, windowing.MinWatermark))
	// Output:
	// true true false
	// false
}

package windowing

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestWindowScripts runs testdata/windows/assign. Commands:
//
//	tumbling size=D [offset=D] / sliding size=D slide=D [offset=D] / sessions gap=D
//	assign ts=T...               the windows of each timestamp
//	merge                        one window per line "start end": Flink's session merge
//
// Times are on 2024-01-01 as in the watermark scripts (10:00:05.250).
func TestWindowScripts(t *testing.T) {
	datadriven.Walk(t, "../testdata/windows/assign", func(t *testing.T, path string) {
		var a Assigner
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			dur := func(name string) time.Duration {
				if !d.HasArg(name) {
					return 0
				}
				var s string
				d.ScanArgs(t, name, &s)
				v, err := time.ParseDuration(s)
				if err != nil {
					d.Fatalf(t, "%s: %v", name, err)
				}
				return v
			}
			switch d.Cmd {
			case "tumbling":
				a = Tumbling(dur("size"), dur("offset"))
			case "sliding":
				a = Sliding(dur("size"), dur("slide"), dur("offset"))
			case "sessions":
				a = Sessions(dur("gap"))
			case "assign":
				var b strings.Builder
				for _, arg := range d.CmdArgs {
					for _, v := range arg.Vals {
						ts := parseTime(t, d, v)
						fmt.Fprintf(&b, "%s:", v)
						for _, w := range a.Assign(nil, ts) {
							fmt.Fprintf(&b, " [%s, %s)", clock(w.Start), clock(w.End))
						}
						b.WriteString("\n")
					}
				}
				return b.String()
			case "merge":
				var ws []Window
				for _, line := range lines(d.Input) {
					f := strings.Fields(line)
					ws = append(ws, Window{Start: parseTime(t, d, f[0]), End: parseTime(t, d, f[1])})
				}
				merged, members := MergeWindows(ws)
				var b strings.Builder
				for i, w := range merged {
					fmt.Fprintf(&b, "[%s, %s) from %v\n", clock(w.Start), clock(w.End), members[i])
				}
				return b.String()
			default:
				d.Fatalf(t, "unknown command %q", d.Cmd)
			}
			if err := ValidateAssigner(a); err != nil {
				return "error: " + err.Error() + "\n"
			}
			return ""
		})
	})
}

// Command totals is the stateful job of the crash tests:
// shared.BuildTotals.
package main

import "github.com/weirstream/weir/e2e/jobs/shared"

func main() { shared.Main("e2e-totals", shared.BuildTotals) }

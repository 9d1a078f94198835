// Command activity is the keyed job the end-to-end tests run as real
// processes: shared.BuildActivity.
package main

import "github.com/weirstream/weir/e2e/jobs/shared"

func main() { shared.Main("e2e-activity", shared.BuildActivity) }

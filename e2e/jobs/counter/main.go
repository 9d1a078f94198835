// Command counter is the keyed counting job of the memory benchmark:
// shared.BuildCounter.
package main

import "github.com/weirstream/weir/e2e/jobs/shared"

func main() { shared.Main("e2e-counter", shared.BuildCounter) }

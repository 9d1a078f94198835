// Command torture is the job of the randomized fault test
// (e2e/torture_test.go): shared.BuildTorture.
package main

import "github.com/weirstream/weir/e2e/jobs/shared"

func main() { shared.Main("e2e-torture", shared.BuildTorture) }

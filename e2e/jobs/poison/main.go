// Command poison is the failure-handling test job: orders are decoded,
// validated and enriched by a flaky service; the error policy comes from
// WEIR_ERROR_POLICY (shared.BuildPoison).
package main

import "github.com/weirstream/weir/e2e/jobs/shared"

func main() { shared.Main("e2e-poison", shared.BuildPoison) }

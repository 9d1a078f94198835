// Command enrich is the end-to-end tests' enrichment job: the stateless
// job's events tagged through an HTTP service with calls in flight
// (shared.BuildEnrich).
package main

import "github.com/weirstream/weir/e2e/jobs/shared"

func main() { shared.Main("e2e-enrich", shared.BuildEnrich) }

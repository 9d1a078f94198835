// Command stateless is the job the end-to-end tests run as a real process:
// it reads JSON events, drops bots, tags the rest and writes them, keyed as
// they came (shared.BuildStateless).
package main

import "github.com/weirstream/weir/e2e/jobs/shared"

func main() { shared.Main("e2e-stateless", shared.BuildStateless) }

// Command sessions is the session-window job the end-to-end tests run as
// real processes: shared.BuildSessions.
package main

import "github.com/weirstream/weir/e2e/jobs/shared"

func main() { shared.Main("e2e-sessions", shared.BuildSessions) }

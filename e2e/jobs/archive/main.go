// Command archive is the end-to-end tests' archive job: the stateless
// job's human events archived to S3 as Parquet and as JSON lines
// (shared.BuildArchive).
package main

import "github.com/weirstream/weir/e2e/jobs/shared"

func main() { shared.Main("e2e-archive", shared.BuildArchive) }

package testpb

import _ "embed"

// Schema is payment.proto, as the registry keeps it.
//
//go:embed payment.proto
var Schema string

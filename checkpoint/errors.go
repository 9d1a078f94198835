package checkpoint

import "errors"

// ErrAborted is returned by Wait when the wait was stopped before the
// checkpoint's outputs were all acknowledged. The checkpoint is abandoned:
// nothing it covers is committed, and the next checkpoint covers it again.
var ErrAborted = errors.New("checkpoint: aborted before its outputs were acknowledged")

package operators

// AccSpills is how often a task's window accumulators filled its share of
// memory and went to the store, in every task so far.
func AccSpills() int64 { return accSpills.Load() }

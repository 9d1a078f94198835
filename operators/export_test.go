package operators

// MemSpills is how often a task's state kept in memory filled its share
// and went to the store, in every task so far.
func MemSpills() int64 { return memSpills.Load() }

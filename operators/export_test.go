package operators

// MemSpills is how often a task's state kept in memory filled its share
// and went to the store, in every task so far.
func MemSpills() int64 { return memSpills.Load() }

// MemStoreReads is how often a task's state kept in memory read a value it
// did not hold from the store, in every task so far.
func MemStoreReads() int64 { return memStoreReads.Load() }

package engine

// SetClientStartedHook sets a function the runtime calls right after it
// created its Kafka client (which joins the group at once), for tests
// that need the group's first assignment to race the rest of the start.
func SetClientStartedHook(fn func()) (restore func()) {
	old := testHookClientStarted
	testHookClientStarted = fn
	return func() { testHookClientStarted = old }
}

package engine

// SetClientStartedHook sets a function the runtime calls right after it
// created its Kafka client (which joins the group at once), for tests
// that need the group's first assignment to race the rest of the start.
func SetClientStartedHook(fn func()) (restore func()) {
	old := testHookClientStarted
	testHookClientStarted = fn
	return func() { testHookClientStarted = old }
}

// SetRunnerHook sets a function called with +1 when a replica starts a
// runner of a task and with -1 when that runner has stopped, for tests
// that count a task's runners.
func SetRunnerHook(fn func(replica string, id TaskID, delta int)) (restore func()) {
	old := testHookRunner
	testHookRunner = fn
	return func() { testHookRunner = old }
}

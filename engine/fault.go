//go:build !weirfault

package engine

// faultPoint is where a test build (tag weirfault, see fault_on.go) may
// kill the process; in every other build it does nothing.
func faultPoint(string) {}

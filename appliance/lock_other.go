//go:build !unix

package appliance

// lockStateDir does nothing where there is no flock: homenet serve runs on
// Linux, and this keeps the package building elsewhere.
func lockStateDir(dir string) (unlock func(), err error) { return func() {}, nil }

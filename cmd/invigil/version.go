package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is the release; builds from a checkout add the VCS revision.
const version = "0.1.0"

// revision is the VCS revision the binary was built from, if known.
func revision() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return s.Value[:12]
			}
		}
	}
	return "unknown"
}

func versionString() string {
	return fmt.Sprintf("invigil %s %s %s/%s %s", version, revision(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}

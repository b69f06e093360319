package loadtest

import "errors"

var (
	// ErrConfig wraps every reason Config.Validate refuses a run.
	ErrConfig = errors.New("loadtest: invalid config")
	// ErrNoneConnected is returned with the Result when no synthetic
	// participant got a media connection: the run measured nothing.
	ErrNoneConnected = errors.New("loadtest: no participant connected")
)

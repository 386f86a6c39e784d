package main

import "github.com/lifeboat-dr/lifeboat/tracker"

func checkDevice(path string) error { return tracker.CheckDevice(path) }

func openTracker(o trackerOptions) (trackedDisks, error) {
	t, err := tracker.Open(tracker.Options{PinDir: o.pinDir, RingBufferSize: o.ringSize, BitmapGranularity: o.granularity, CompletionEvents: o.completions})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// unsupported says why a command cannot run here: nil, Linux runs them all.
func unsupported(string) error { return nil }

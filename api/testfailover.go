package api

import "time"

// Paths of the test failovers the server wrote, kept until cleaned up.
const (
	// PathTestFailovers lists them (admin, GET, ?machine=M).
	PathTestFailovers = "/v1/test-failovers"
	// PathTestFailover removes the images one wrote (admin, DELETE).
	PathTestFailover = "/v1/test-failovers/{id}"
)

// TestFailover is a test failover whose images are still on the server
// host: those of POST /v1/machines/{m}/failover with test, of a group's or
// a plan's test.
type TestFailover struct {
	ID      string    `json:"id"`
	Machine string    `json:"machine"`
	Point   Point     `json:"point"`
	Time    time.Time `json:"time"`
	Out     string    `json:"out"`
	Images  []Image   `json:"images"`
}

// TestFailoverCleanup answers DELETE /v1/test-failovers/{id}.
type TestFailoverCleanup struct {
	ID      string `json:"id"`
	Machine string `json:"machine"`
	// Removed are the image files removed; Missing those already gone;
	// Kept those left because a real failover uses them now.
	Removed []string `json:"removed"`
	Missing []string `json:"missing"`
	Kept    []string `json:"kept"`
	// OutRemoved is true when the output directory was left empty and
	// removed.
	OutRemoved bool `json:"out_removed"`
}

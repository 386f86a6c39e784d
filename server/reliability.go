package server

import "github.com/lifeboat-dr/lifeboat/api"

// alertDisks gives the alerts the disk problems of the process role,
// which is created after the alerts.
type alertDisks struct{ s *Server }

func (a alertDisks) DiskProblems(machine string) []api.DiskProblem {
	return a.s.proc.DiskProblems(machine)
}

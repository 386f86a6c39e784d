package store

// LatestPoint returns the last point of points (listed oldest first, as
// Store.Points returns them) of the given kind ("crash", "app", "group"),
// or of any kind when kind is "". It reports false when there is none.
func LatestPoint(points []Point, kind string) (Point, bool) {
	for i := len(points) - 1; i >= 0; i-- {
		if kind == "" || points[i].Kind == kind {
			return points[i], true
		}
	}
	return Point{}, false
}

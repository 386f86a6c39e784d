// Package servertest helps tests run a real lifeboat-server in process:
// an initialized data directory, a server on 127.0.0.1:0, registered
// agents, and .hrl segments built with hrlfmt's writer. Like httptest, it
// is for tests only and must never be linked into a program.
package servertest

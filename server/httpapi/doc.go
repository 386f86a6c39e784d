// Package httpapi owns what every role of lifeboat-server shares to answer
// HTTP requests: the error answer (*Error: a status, a message and a hint
// for the operator, sent as api.Error), the adapter that turns a handler's
// returned error into that answer and a log line, the JSON body helpers,
// and the log keys every component uses. docs/ARCHITECTURE.md §9 is the
// hint convention it follows.
//
// What it must never do:
//   - put the hint inside Error(), or send a cause (Err) to the client;
//   - know about a role: it holds no state and no handler of its own.
package httpapi

// Package cmdlinetest runs a Lifeboat program for real in its own tests
// and checks the conventions internal/cmdline gives every program.
//
// # What the package owns
//
//   - The re-exec harness: a program's TestMain is Main(m, main), so that
//     the test binary, run again with EnvMain=1 (Command, Run), is the
//     program itself. The exit status and output a test checks are then
//     the ones the operator gets. No program's tests re-execute themselves
//     any other way.
//   - Buffer, for the output of a program run in the test's process, which
//     its goroutines write while the test reads it.
//   - Check: usage errors exit 2 with the message and a hint, --version,
//     --help, 'help COMMAND', suggestions of mistyped commands, completion
//     scripts (tried in real bash, fish and zsh on Linux) and man pages.
//
// # What it must never do
//
//   - Know a program's commands: the program's test hands them in (Spec).
//   - Be linked into a program: like httptest, it is for tests only.
package cmdlinetest

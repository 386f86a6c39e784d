// Package testenv creates the real kernel objects that lifeboat's kernel tests
// need (loop devices, partitions, zram devices, bpffs directories, a FUSE
// filesystem whose writes a test can hold in flight) and always removes them
// again. Every kernel test of the project goes through this package; no test
// calls losetup, mknod or mount on its own.
//
// # What the package owns
//
//   - The environment checks: RequireRoot, RequireBPF, RequireCommand. Outside
//     CI they skip the test with a one-line reason; with CI=true they fail it,
//     because in CI these tests must run (docs/ARCHITECTURE.md §10).
//   - Every object it creates: loop devices (NewLoop), partition device nodes it
//     had to create itself because there is no udev, zram devices (NewZram),
//     directories under /sys/fs/bpf (BPFFSDir) and FUSE mounts (NewSlowFS).
//     Each is registered with t.Cleanup when it is created, so it is removed
//     when the test ends: on success, on t.Fatal and on panic. A cleanup that
//     cannot finish in time reports an error instead of hanging the test binary.
//
// # What it must never do
//
//   - Touch a device, mount, bpffs entry or file it did not create: cleanups
//     act only on the objects recorded when they were created (a loop device is
//     detached only while it is still attached to the backing file it was
//     attached to; a device node is removed only if this package made it).
//   - Reach into the FUSE mount from the goroutines that serve it: a handler of
//     SlowFS only ever touches memory. The test process serves its own mount, so
//     a handler that made a syscall on the mount would deadlock the process.
//   - Hold a write forever: every held write is released before the loop device
//     above it is detached and before the filesystem is unmounted.
//   - Hide an environment problem: a missing tool, module or privilege is a
//     skip outside CI and a failure in CI, always with the reason.
//   - Leave anything behind on a normal end of the test. (A test binary killed
//     by -timeout or SIGKILL does not run cleanups; the objects are named
//     lifeboat-* so that they can be recognised by hand.)
//
// # Ordering
//
// t.Cleanup runs cleanups in reverse order of registration. Create a SlowFS
// before the loop devices backed by its files, so that the loop devices are
// detached before the filesystem is unmounted. A loop device releases held
// writes of the SlowFS it sits on before it detaches, and a SlowFS still
// detaches (and reports) loop devices left on its files before it unmounts,
// so even a wrong order does not hang.
package testenv

module github.com/lifeboat-dr/lifeboat

go 1.26.8

require (
	github.com/cilium/ebpf v0.22.0
	github.com/hanwen/go-fuse/v2 v2.12.1
	github.com/pierrec/lz4/v4 v4.1.33
	golang.org/x/sys v0.50.0
)

require golang.org/x/term v0.48.0 // indirect

tool github.com/cilium/ebpf/cmd/bpf2go

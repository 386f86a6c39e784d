// Command fiocompare sets what fio says it wrote (its --write_iolog files)
// next to what `lifeboat-agent track --json` reported, and says whether
// every byte fio changed was tracked. It is the verdict of `make demo`.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/lifeboat-dr/lifeboat/tracker"
)

type ioLine struct {
	action      string
	off, length int64
}

func main() {
	trackFile := flag.String("track", "", "output of lifeboat-agent track --json")
	show := flag.Int("show", 12, "how many fio operations to list next to what was tracked")
	flag.Parse()
	if *trackFile == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: fiocompare --track TRACK.jsonl FIO-IOLOG...")
		os.Exit(2)
	}
	ok, err := run(os.Stdout, *trackFile, flag.Args(), *show)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fiocompare:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

type trackLine struct {
	Event  string     `json:"event"`
	ID     uint64     `json:"id"`
	Offset int64      `json:"offset"`
	Length int64      `json:"length"`
	Op     tracker.Op `json:"op"`
	Gen    uint64     `json:"gen"`
}

func run(w io.Writer, trackFile string, logs []string, show int) (bool, error) {
	var ops []ioLine
	for _, l := range logs {
		o, err := readIOLog(l)
		if err != nil {
			return false, err
		}
		ops = append(ops, o...)
	}
	f, err := os.Open(trackFile)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var tracked []trackLine
	var reported tracker.Set
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var t trackLine
		if err := json.Unmarshal(sc.Bytes(), &t); err != nil {
			return false, fmt.Errorf("%s: %w", trackFile, err)
		}
		if t.Event == "queued" || t.Event == "dirty" {
			tracked = append(tracked, t)
			reported.Add(t.Offset, t.Length)
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	var written tracker.Set
	for _, o := range ops {
		written.Add(o.off, o.length)
	}
	sort.Slice(tracked, func(i, j int) bool { return tracked[i].Offset < tracked[j].Offset })

	fmt.Fprintf(w, "%-44s | %s\n", "fio wrote (from its own I/O log)", "lifeboat tracked (extents covering it)")
	for i, o := range ops {
		if i >= show {
			fmt.Fprintf(w, "... %d more fio operations\n", len(ops)-show)
			break
		}
		var cover []string
		j := sort.Search(len(tracked), func(k int) bool { return tracked[k].Offset+tracked[k].Length > o.off })
		for ; j < len(tracked) && tracked[j].Offset < o.off+o.length && len(cover) < 2; j++ {
			t := tracked[j]
			cover = append(cover, fmt.Sprintf("%s %d+%d gen %d", t.Op, t.Offset, t.Length, t.Gen))
		}
		if len(cover) == 0 {
			cover = []string{"NOT TRACKED"}
		}
		fmt.Fprintf(w, "%-6s offset %12d length %8d | %s\n", o.action, o.off, o.length, strings.Join(cover, "; "))
	}
	var missing, extra tracker.Set
	for _, r := range written.Ranges() {
		missing.Add(r.Off, r.Len)
	}
	for _, r := range reported.Ranges() {
		missing.Remove(r.Off, r.Len)
		extra.Add(r.Off, r.Len)
	}
	for _, r := range written.Ranges() {
		extra.Remove(r.Off, r.Len)
	}
	fmt.Fprintf(w, "\nfio operations: %d, bytes changed: %d in %d ranges\n", len(ops), written.Bytes(), written.Len())
	fmt.Fprintf(w, "tracked extents: %d, bytes reported: %d in %d ranges\n", len(tracked), reported.Bytes(), reported.Len())
	fmt.Fprintf(w, "changed but not tracked: %d bytes\n", missing.Bytes())
	fmt.Fprintf(w, "tracked but not written by fio: %d bytes\n", extra.Bytes())
	if missing.Bytes() == 0 && written.Bytes() > 0 {
		fmt.Fprintln(w, "verdict: every byte fio changed was tracked")
		return true, nil
	}
	fmt.Fprintln(w, "verdict: MISSED CHANGES")
	return false, nil
}

// readIOLog reads a fio iolog (version 2 or 3) and keeps writes and trims.
func readIOLog(path string) ([]ioLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "fio version") {
		return nil, fmt.Errorf("%s: not a fio iolog", path)
	}
	v3 := strings.Contains(sc.Text(), "version 3")
	var out []ioLine
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if v3 && len(fields) > 0 {
			fields = fields[1:] // timestamp
		}
		if len(fields) != 4 || (fields[1] != "write" && fields[1] != "trim") {
			continue
		}
		off, err1 := strconv.ParseInt(fields[2], 10, 64)
		n, err2 := strconv.ParseInt(fields[3], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, sc.Text(), err)
		}
		out = append(out, ioLine{fields[1], off, n})
	}
	return out, sc.Err()
}

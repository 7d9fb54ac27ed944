// Command runc-nosysres runs runc with CAP_SYS_RESOURCE removed from the container's
// capabilities, and only on a host whose capability bounding set lacks it.
//
// Why: in some sandboxes (gVisor-like or nested container hosts) the bounding set lacks
// CAP_SYS_RESOURCE, so a privileged container (kind's node, kube-proxy inside it) asks runc for
// a capability it cannot grant and fails with "unable to apply caps: operation not permitted".
// Registered as dockerd's default runtime (hack/kind/docker.sh) and as the runc binary of the
// kind node's containerd, it edits the OCI bundle's config.json on create/run and the process
// spec on exec, then execs the real runc with the same arguments. Where the bounding set has the
// capability it changes nothing: it is only ever installed where it was detected as needed.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const capSysResource = 24

var candidates = []string{"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/local/bin/runc"}

func main() {
	real := os.Getenv("NOSYSRES_RUNC")
	if real == "" {
		for _, c := range candidates {
			if _, err := os.Stat(c); err == nil {
				real = c
				break
			}
		}
	}
	if real == "" {
		fmt.Fprintln(os.Stderr, "runc-nosysres: no runc found in", candidates)
		os.Exit(127)
	}
	args := os.Args[1:]
	if !bounded() {
		if err := strip(args); err != nil {
			fmt.Fprintln(os.Stderr, "runc-nosysres:", err)
			os.Exit(1)
		}
	}
	argv := append([]string{"runc"}, args...)
	if err := syscall.Exec(real, argv, os.Environ()); err != nil {
		fmt.Fprintln(os.Stderr, "runc-nosysres: exec", real, err)
		os.Exit(127)
	}
}

// bounded says whether this process's capability bounding set holds CAP_SYS_RESOURCE.
func bounded() bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return true
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapBnd:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err != nil || n&(1<<capSysResource) != 0
		}
	}
	return true
}

// value returns the value of a flag given as "--name v", "-n v" or "--name=v".
func value(args []string, long, short string) (string, bool) {
	for i, a := range args {
		if a == long || (short != "" && a == short) {
			if i+1 < len(args) {
				return args[i+1], true
			}
		}
		if v, ok := strings.CutPrefix(a, long+"="); ok {
			return v, true
		}
	}
	return "", false
}

func command(args []string) string {
	for _, a := range args {
		switch a {
		case "create", "run", "exec":
			return a
		}
	}
	return ""
}

func strip(args []string) error {
	switch command(args) {
	case "create", "run":
		bundle, ok := value(args, "--bundle", "-b")
		if !ok {
			bundle = "."
		}
		return edit(filepath.Join(bundle, "config.json"), func(doc map[string]any) {
			if p, ok := doc["process"].(map[string]any); ok {
				dropCaps(p)
				clampOOMScore(p)
			}
		})
	case "exec":
		if spec, ok := value(args, "--process", "-p"); ok {
			return edit(spec, func(p map[string]any) { dropCaps(p); clampOOMScore(p) })
		}
	}
	return nil
}

func dropCaps(process map[string]any) {
	caps, ok := process["capabilities"].(map[string]any)
	if !ok {
		return
	}
	for set, list := range caps {
		items, ok := list.([]any)
		if !ok {
			continue
		}
		kept := items[:0]
		for _, c := range items {
			if c != "CAP_SYS_RESOURCE" {
				kept = append(kept, c)
			}
		}
		caps[set] = kept
	}
}

// clampOOMScore raises a requested oom_score_adj below this process's own to that value:
// lowering it needs CAP_SYS_RESOURCE too (kubelet asks -997 for critical pods).
func clampOOMScore(process map[string]any) {
	want, ok := process["oomScoreAdj"].(json.Number)
	if !ok {
		return
	}
	raw, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return
	}
	own, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return
	}
	if n, err := want.Int64(); err == nil && n < int64(own) {
		process["oomScoreAdj"] = own
	}
}

func edit(path string, change func(map[string]any)) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep large integers (memory limits, rlimits) exact
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	change(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode().Perm())
}

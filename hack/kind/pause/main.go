// Command pause is the pod sandbox's process: it holds the pod's namespaces open, reaps
// zombies (it is PID 1 when the pod shares its PID namespace) and exits on SIGINT/SIGTERM.
// The upstream pause image is a small C program; this is the same behaviour in Go so the node
// image can be built from Go modules and Debian packages alone.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}

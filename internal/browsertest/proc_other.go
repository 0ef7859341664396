//go:build !linux

package browsertest

import (
	"io"
	"os/exec"
	"time"
)

// process is a running Chromium. Outside Linux only Chromium itself is
// killed; the tests run on Linux.
type process struct {
	cmd    *exec.Cmd
	exited chan error
	done   chan struct{}
}

func start(bin string, args, env []string, out io.Writer) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan error, 1), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.exited <- cmd.Wait()
	}()
	return p, nil
}

func (p *process) stop() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

package browsertest

import (
	"io"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// process is a running Chromium in a process group of its own.
type process struct {
	cmd    *exec.Cmd
	exited chan error // receives Wait's error once, when Chromium exits
	done   chan struct{}
}

// start launches bin in a new process group with env, writing its output
// to out.
// Chromium forks renderer, GPU and utility processes into that group;
// stop kills them all. Pdeathsig kills Chromium if the test binary dies
// (a test timeout's panic) before stop runs. It fires when the thread that
// forked the child exits, so the fork happens on a goroutine that keeps its
// thread locked until Chromium is gone.
func start(bin string, args, env []string, out io.Writer) (*process, error) {
	p := &process{exited: make(chan error, 1), done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer close(p.done)
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		cmd.Stdout = out
		cmd.Stderr = out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		cmd.WaitDelay = 5 * time.Second // after the kill, stop waiting on its pipes
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.cmd = cmd
		started <- nil
		p.exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// stop kills Chromium's whole process group, children that outlived
// Chromium included, and waits for Chromium itself. The group id is
// Chromium's pid, which cannot be reused before Chromium is waited for.
func (p *process) stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

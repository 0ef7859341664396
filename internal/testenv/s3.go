package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Fixed credentials of the test S3 server. They guard nothing: the server
// listens on loopback and lives only as long as the test binary.
const (
	S3AccessKey = "chatvault-test"
	S3SecretKey = "chatvault-test-secret"
	S3Region    = "us-east-1"
)

// s3Server is the one versitygw a test binary shares; each test gets its
// own bucket on it, so sharing costs no isolation and saves a start per test.
var s3Server struct {
	once     sync.Once
	endpoint string // http://127.0.0.1:port
	root     string // the posix backend's top directory; buckets are its subdirectories
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{}
	err      error
}

// S3 returns a storage URL for a fresh, empty, private bucket on a real
// S3-compatible server (versitygw, posix backend). The server starts once
// per test binary and dies with it; the bucket's contents are removed when
// the test ends. A test fails, never skips, when versitygw is missing:
// scripts/test.sh installs it.
//
// The URL has the form
//
//	s3://BUCKET?endpoint=http://127.0.0.1:PORT&region=us-east-1&use_path_style=true
//
// S3 also sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION in
// the process environment, once: gocloud's s3 URLs take credentials only
// from the AWS default chain, never from the URL, and the environment is the
// one link of that chain a test controls. It is set directly rather than
// with t.Setenv because it is process-wide and parallel tests share it.
func S3(t testing.TB) string {
	t.Helper()
	s3Server.once.Do(startS3Server)
	if s3Server.err != nil {
		t.Fatalf("test S3 server: %v", s3Server.err)
	}

	bucket := "cvtest-" + RandomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s3TestClient().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("test S3 server: create bucket %s: %v", bucket, err)
	}
	// Removing the bucket's directory behind the server's back is safe: no
	// request for this bucket comes after its test, and it takes every
	// object and staged upload in one call, however the test left them.
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Join(s3Server.root, bucket)) })

	q := url.Values{}
	q.Set("endpoint", s3Server.endpoint)
	q.Set("region", S3Region)
	q.Set("use_path_style", "true")
	return "s3://" + bucket + "?" + q.Encode()
}

// FileStore returns a file:// storage URL for a directory, not yet created,
// inside the test's temporary directory.
func FileStore(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "blobs")
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
}

// StopS3 kills the shared test S3 server, if one started, and removes its
// files. It is for TestMain, after m.Run; without it the server still dies
// with the test binary, leaving only its temporary directory behind.
func StopS3() {
	if s3Server.cmd == nil {
		return
	}
	_ = s3Server.cmd.Process.Kill()
	<-s3Server.exited
	_ = os.RemoveAll(s3Server.dir)
}

func s3TestClient() *s3.Client {
	return s3.New(s3.Options{
		Region:       S3Region,
		BaseEndpoint: aws.String(s3Server.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(S3AccessKey, S3SecretKey, ""),
	})
}

func startS3Server() {
	bin, err := findVersitygw()
	if err != nil {
		s3Server.err = err
		return
	}
	setS3Env()
	removeStaleS3Dirs()
	dir, err := os.MkdirTemp("", fmt.Sprintf("chatvault-versitygw-%d-", os.Getpid()))
	if err != nil {
		s3Server.err = err
		return
	}
	s3Server.dir = dir
	s3Server.root = filepath.Join(dir, "root")
	if err := os.Mkdir(s3Server.root, 0o755); err != nil {
		s3Server.err = err
		return
	}
	// A port picked by listening on :0 can be taken by someone else before
	// versitygw binds it, so a failed start gets a few fresh ports.
	for attempt := 0; attempt < 3; attempt++ {
		if err = startVersitygw(bin, dir); err == nil {
			return
		}
	}
	s3Server.err = err
}

func findVersitygw() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw is not on PATH nor in %s; scripts/test.sh installs it", strings.Join(dirs, ", "))
}

// setS3Env points the AWS default credential chain at the test server's
// credentials, and clears the variables through which a developer's own
// AWS setup would take precedence or break config loading (a profile that
// does not exist here, a session token the test server never issued, an
// endpoint override).
func setS3Env() {
	for _, k := range []string{"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		_ = os.Unsetenv(k)
	}
	_ = os.Setenv("AWS_ACCESS_KEY_ID", S3AccessKey)
	_ = os.Setenv("AWS_SECRET_ACCESS_KEY", S3SecretKey)
	_ = os.Setenv("AWS_REGION", S3Region)
	// No instance metadata service is reachable from tests; probing it only
	// adds timeouts when something else in the chain fails.
	_ = os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// removeStaleS3Dirs deletes the directories of earlier test binaries that
// were killed before they could clean up; the pid in each name tells
// whether its owner still runs.
func removeStaleS3Dirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "chatvault-versitygw-*"))
	for _, m := range matches {
		parts := strings.SplitN(filepath.Base(m), "-", 4)
		if len(parts) < 3 {
			continue
		}
		pid, err := strconv.Atoi(parts[2])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(m)
		}
	}
}

func startVersitygw(bin, dir string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logPath := filepath.Join(dir, "versitygw.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()

	started := make(chan error, 1)
	exited := make(chan struct{})
	var cmd *exec.Cmd
	// Pdeathsig fires when the thread that forked the child exits, not the
	// process, and Go ends threads whose locked goroutine returns. So fork
	// from a goroutine that locks its thread and never lets go: it waits on
	// the server for the life of the binary.
	go func() {
		runtime.LockOSThread()
		cmd = exec.Command(bin,
			"--port", addr,
			"--access", S3AccessKey,
			"--secret", S3SecretKey,
			"--region", S3Region,
			"--quiet",
			"posix", s3Server.root,
		)
		cmd.Dir = dir
		cmd.Stdout = logFile
		cmd.Stderr = logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err := cmd.Start()
		started <- err
		if err != nil {
			return
		}
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("versitygw exited during start-up: %s", tail(logPath))
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("versitygw did not accept connections on %s within 15s: %s", addr, tail(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s3Server.endpoint = "http://" + addr
	s3Server.cmd = cmd
	s3Server.exited = exited
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	if len(b) == 0 {
		return "(no output)"
	}
	return string(b)
}

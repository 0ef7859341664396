// Command chatvault archives the media customers send over WhatsApp into
// object storage the business owns, and serves it to CRMs and automations.
package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chatvault/chatvault/internal/app"
	"github.com/chatvault/chatvault/internal/auth"
	"github.com/chatvault/chatvault/internal/config"
)

//go:embed openapi.yaml schemas/*.json
var contract embed.FS

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "chatvault:", err)
		os.Exit(1)
	}
}

const usage = `usage: chatvault [command]

commands:
  serve          run the HTTP API and the queue workers (the default);
                 serve --no-workers runs the API alone
  worker         run the queue workers alone
  reindex        rebuild the whole Redis index from storage alone
  keygen         print a new API key and the hash to put in the config file
  hash-key KEY   print the hash of an existing key
`

// run is the whole program, so tests can start the real server in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "keygen":
		key := auth.NewKey()
		fmt.Fprintf(stdout, "key:  %s\nhash: %s\n", key, auth.HashKey(key))
		return nil
	case "hash-key":
		if len(args) != 1 {
			return errors.New("usage: chatvault hash-key KEY")
		}
		fmt.Fprintln(stdout, auth.HashKey(args[0]))
		return nil
	case "serve", "reindex", "worker":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}

	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	for _, a := range args {
		switch {
		case cmd == "serve" && a == "--no-workers":
			cfg.Workers = 0
		default:
			return fmt.Errorf("%s: unknown argument %q", cmd, a)
		}
	}
	if cmd == "worker" {
		cfg.Workers = max(cfg.Workers, 1)
	}
	log := newLogger(stdout, cfg.LogLevel)
	schemas, err := fs.Sub(contract, "schemas")
	if err != nil {
		return err
	}
	spec, err := contract.ReadFile("openapi.yaml")
	if err != nil {
		return err
	}
	a, err := app.Build(ctx, cfg, log, app.Contract{Spec: spec, Schemas: schemas})
	if err != nil {
		return err
	}
	defer a.Close()

	if cmd == "reindex" {
		start := time.Now()
		n, err := a.Media.Reindex(ctx)
		if err != nil {
			return fmt.Errorf("reindex: %w", err)
		}
		log.Info("reindex finished", "records", n, "duration_ms", time.Since(start).Milliseconds())
		return nil
	}
	if cmd == "worker" {
		return a.RunWorkers(ctx, cfg.Workers, log)
	}
	return a.Serve(ctx, cfg, log)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

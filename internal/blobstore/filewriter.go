package blobstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// fileWriter streams one object into a file:// store without gocloud's
// fileblob writer, which MD5-hashes every byte for its sidecar (halving
// archive throughput: see docs/BENCHMARKS.md). It keeps fileblob's on-disk layout: a temporary
// "<path>.<hex ns>.tmp" beside the target, a "<path>.attrs" JSON sidecar
// holding the content type, then a rename.
type fileWriter struct {
	ctx         context.Context
	f           *os.File
	path        string
	contentType string
	head        []byte // the first bytes, for sniffing when contentType is ""
	closed      bool
}

func (s *Store) newFileWriter(ctx context.Context, key, contentType string) (*fileWriter, error) {
	path := filepath.Join(s.fileRoot, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		name := fmt.Sprintf("%s.%x.tmp", path, time.Now().UnixNano())
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if os.IsExist(err) && try < 10000 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &fileWriter{ctx: ctx, f: f, path: path, contentType: contentType}, nil
	}
}

func (w *fileWriter) keepHead(p []byte) {
	if w.contentType == "" && len(w.head) < 512 {
		w.head = append(w.head, p[:min(len(p), 512-len(w.head))]...)
	}
}

func (w *fileWriter) Write(p []byte) (int, error) {
	w.keepHead(p)
	return w.f.Write(p)
}

func (w *fileWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.contentType == "" {
		return io.Copy(struct{ io.Writer }{w}, r)
	}
	return w.f.ReadFrom(r)
}

func (w *fileWriter) Close() error {
	if w.closed {
		return errors.New("close of a closed writer")
	}
	w.closed = true
	tmp := w.f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if err := w.f.Close(); err != nil {
		return err
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	ct := w.contentType
	if ct == "" {
		ct = http.DetectContentType(w.head)
	}
	attrs, _ := json.Marshal(map[string]string{"user.content_type": ct})
	if err := os.WriteFile(w.path+".attrs", append(attrs, '\n'), 0o666); err != nil {
		return err
	}
	if err := os.Rename(tmp, w.path); err != nil {
		_ = os.Remove(w.path + ".attrs")
		return err
	}
	return nil
}

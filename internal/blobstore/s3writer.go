package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// abortTimeout bounds the clean-up of a failed multipart upload. It runs on
// a fresh context because the usual reason for aborting is that the
// caller's context was cancelled.
const abortTimeout = 30 * time.Second

// maxParts is S3's limit on parts per upload; at the default 5 MiB part
// size it caps an object at about 48 GiB.
const maxParts = 10000

// s3Writer streams one object to S3 with its own multipart upload instead
// of gocloud's s3blob writer. In gocloud v0.47 that writer goes through the
// SDK transfer manager, which reads the first 16 MiB into one buffer and
// then allocates concurrency+1 part buffers (8 concurrent writers peaked at
// 257 MiB of heap in our measurement), and which aborts a failed upload
// with the caller's already-cancelled context, so a cancelled write leaves
// its parts behind on the server. Here a writer holds at most `concurrency`
// pooled part buffers, an object that fits one part is a single PutObject,
// and an abort always reaches S3.
//
// Errors are not sticky here: the Store's writer wrapper cancels ctx after
// any failure, and Close then aborts.
type s3Writer struct {
	ctx         context.Context
	client      *s3.Client
	bucket, key string
	contentType string // "" until known; sniffed from the first bytes if the caller gave none
	checksum    types.ChecksumAlgorithm
	pool        *sync.Pool
	partSize    int

	slots    chan struct{} // one token per part buffer this writer holds
	buf      []byte        // the part being filled; nil when none is held
	uploadID *string
	nextPart int32
	closed   bool

	wg    sync.WaitGroup // part uploads in flight
	mu    sync.Mutex     // guards parts and err, which uploads write
	parts []types.CompletedPart
	err   error
}

func (s *Store) newS3Writer(ctx context.Context, key, contentType string) *s3Writer {
	var sum types.ChecksumAlgorithm
	// Mirror the client's checksum policy, which the URL's
	// request_checksum_calculation sets: CRC32 end to end unless the
	// server only copes with checksums where S3 requires them.
	if s.s3.Options().RequestChecksumCalculation != aws.RequestChecksumCalculationWhenRequired {
		sum = types.ChecksumAlgorithmCrc32
	}
	return &s3Writer{
		ctx:         ctx,
		client:      s.s3,
		bucket:      s.s3Bucket,
		key:         key,
		contentType: contentType,
		checksum:    sum,
		pool:        &s.parts,
		partSize:    s.partSize,
		slots:       make(chan struct{}, s.concurrency),
	}
}

func (w *s3Writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := w.fill(); err != nil {
			return n, err
		}
		c := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+c]
		p = p[c:]
		n += c
	}
	return n, nil
}

// ReadFrom reads straight into the part buffer, sparing io.Copy's own.
func (w *s3Writer) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	for {
		if err := w.fill(); err != nil {
			return n, err
		}
		c, err := r.Read(w.buf[len(w.buf):cap(w.buf)])
		w.buf = w.buf[:len(w.buf)+c]
		n += int64(c)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// fill makes room in w.buf: it starts a buffer, or ships a full one. A full
// part ships only once more bytes arrive, so an object of exactly one part
// still goes up as a single PutObject.
func (w *s3Writer) fill() error {
	if w.closed {
		return errors.New("write after close")
	}
	if err := w.failed(); err != nil {
		return err
	}
	// Stop the caller's stream early; Close will abort.
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.buf != nil && len(w.buf) < cap(w.buf) {
		return nil
	}
	if w.buf != nil {
		if err := w.ship(); err != nil {
			return err
		}
	}
	select {
	case w.slots <- struct{}{}:
	case <-w.ctx.Done():
		return w.ctx.Err()
	}
	w.buf = w.getBuf()
	return nil
}

func (w *s3Writer) getBuf() []byte {
	if b, ok := w.pool.Get().(*[]byte); ok && cap(*b) >= w.partSize {
		return (*b)[:0:w.partSize]
	}
	return make([]byte, 0, w.partSize)
}

func (w *s3Writer) putBuf(b []byte) {
	b = b[:0]
	w.pool.Put(&b)
	<-w.slots
}

// ship uploads w.buf as the next part, in the background, and gives up the
// buffer; the slot it holds is released when the upload ends, which is what
// bounds memory and makes a writer wait on slow uploads.
func (w *s3Writer) ship() error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.uploadID == nil {
		w.sniff()
		out, err := w.client.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{
			Bucket:            &w.bucket,
			Key:               &w.key,
			ContentType:       &w.contentType,
			ChecksumAlgorithm: w.checksum,
		})
		if err != nil {
			return fmt.Errorf("create multipart upload: %w", err)
		}
		w.uploadID = out.UploadId
	}
	if w.nextPart == maxParts {
		return fmt.Errorf("object is over %d parts of %d bytes", maxParts, w.partSize)
	}
	w.nextPart++
	num, buf := w.nextPart, w.buf
	w.buf = nil
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer w.putBuf(buf)
		out, err := w.client.UploadPart(w.ctx, &s3.UploadPartInput{
			Bucket:            &w.bucket,
			Key:               &w.key,
			UploadId:          w.uploadID,
			PartNumber:        aws.Int32(num),
			Body:              bytes.NewReader(buf),
			ContentLength:     aws.Int64(int64(len(buf))),
			ChecksumAlgorithm: w.checksum,
		})
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			if w.err == nil {
				w.err = fmt.Errorf("upload part %d: %w", num, err)
			}
			return
		}
		w.parts = append(w.parts, types.CompletedPart{
			PartNumber:        aws.Int32(num),
			ETag:              out.ETag,
			ChecksumCRC32:     out.ChecksumCRC32,
			ChecksumCRC32C:    out.ChecksumCRC32C,
			ChecksumCRC64NVME: out.ChecksumCRC64NVME,
			ChecksumSHA1:      out.ChecksumSHA1,
			ChecksumSHA256:    out.ChecksumSHA256,
		})
	}()
	return nil
}

func (w *s3Writer) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// sniff settles the content type the way gocloud's writer does, so both
// paths store the same type for the same bytes.
func (w *s3Writer) sniff() {
	if w.contentType == "" {
		w.contentType = http.DetectContentType(w.buf[:min(len(w.buf), 512)])
	}
}

// Close commits the object, or aborts it if ctx was cancelled or any part
// failed; either way it returns every buffer it held.
func (w *s3Writer) Close() (err error) {
	if w.closed {
		return errors.New("close of a closed writer")
	}
	w.closed = true
	defer func() {
		if w.buf != nil {
			w.putBuf(w.buf)
			w.buf = nil
		}
	}()

	if w.uploadID == nil {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		w.sniff()
		_, err := w.client.PutObject(w.ctx, &s3.PutObjectInput{
			Bucket:        &w.bucket,
			Key:           &w.key,
			ContentType:   &w.contentType,
			Body:          bytes.NewReader(w.buf),
			ContentLength: aws.Int64(int64(len(w.buf))),
		})
		return err
	}

	if len(w.buf) > 0 {
		if err := w.ship(); err != nil {
			w.abort()
			return err
		}
	}
	w.wg.Wait()
	if err := w.failed(); err != nil {
		w.abort()
		return err
	}
	if err := w.ctx.Err(); err != nil {
		w.abort()
		return err
	}
	sort.Slice(w.parts, func(i, j int) bool { return *w.parts[i].PartNumber < *w.parts[j].PartNumber })
	_, err = w.client.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &w.bucket,
		Key:             &w.key,
		UploadId:        w.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
	})
	if err != nil {
		w.abort()
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}

// abort drops the multipart upload once no part is in flight. Its own
// failure is not reported: the write has failed already, and a bucket
// lifecycle rule for incomplete uploads is the backstop.
func (w *s3Writer) abort() {
	w.wg.Wait()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	_, _ = w.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   &w.bucket,
		Key:      &w.key,
		UploadId: w.uploadID,
	})
}

package blobstore

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// PendingUploads counts the bucket's unfinished multipart uploads, which
// an aborted write must not leave behind; 0 for backends without them.
func PendingUploads(ctx context.Context, s *Store) (int, error) {
	if s.s3 == nil {
		return 0, nil
	}
	out, err := s.s3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &s.s3Bucket})
	if err != nil {
		return 0, err
	}
	return len(out.Uploads), nil
}

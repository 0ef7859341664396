// Package apperr is chatvault's one error vocabulary: the domain returns these
// typed errors and the API maps each kind to exactly one HTTP status.
package apperr

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error for callers; it never carries details.
type Kind string

const (
	Invalid          Kind = "invalid"           // 400: malformed or invalid input
	Unauthorized     Kind = "unauthorized"      // 401: no or bad credentials
	Forbidden        Kind = "forbidden"         // 403: credentials lack a scope
	NotFound         Kind = "not_found"         // 404: absent, or another tenant's
	Conflict         Kind = "conflict"          // 409: a concurrent request holds the resource
	Gone             Kind = "gone"              // 410: the upstream object expired
	TooLarge         Kind = "too_large"         // 413: over a size limit
	UnsupportedMedia Kind = "unsupported_media" // 415: content does not match its declared type
	Unprocessable    Kind = "unprocessable"     // 422: well-formed but wrong (checksum, reused idempotency key)
	RateLimited      Kind = "rate_limited"      // 429: over a rate limit
	BadGateway       Kind = "bad_gateway"       // 502: an upstream provider failed
	Unavailable      Kind = "unavailable"       // 503: a dependency is down
	Internal         Kind = "internal"          // 500: a bug; details are logged, never shown
)

// FieldError names one invalid input field. Pointer is a JSON Pointer into
// the request body (or "query:name", "header:Name" for other inputs).
type FieldError struct {
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
}

// Error is a classified error with a detail that is safe to show a client.
type Error struct {
	Kind       Kind
	Detail     string
	Fields     []FieldError
	RetryAfter time.Duration // for RateLimited and Unavailable
	Err        error         // the cause, logged but never shown
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Detail, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of the given kind with a client-safe detail.
func New(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// Wrap classifies cause, keeping it for logs.
func Wrap(kind Kind, cause error, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...), Err: cause}
}

// WithFields returns an Invalid error listing field errors.
func WithFields(detail string, fields ...FieldError) *Error {
	return &Error{Kind: Invalid, Detail: detail, Fields: fields}
}

// KindOf reports the kind of err, Internal for unclassified errors.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err is of kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// As returns the *Error inside err, if any.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

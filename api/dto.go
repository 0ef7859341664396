package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-playground/validator/v10"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/media"
)

// archiveRequest is the body of POST /v1/media (schemas/archive-request.json).
type archiveRequest struct {
	CustomerID string            `json:"customer_id" validate:"required,max=128,customer_id"`
	Kind       string            `json:"kind" validate:"omitempty,oneof=audio video image document sticker"`
	Source     *sourceDTO        `json:"source" validate:"required"`
	Message    *messageDTO       `json:"message"`
	Tags       []string          `json:"tags" validate:"max=50,dive,min=1,max=64"`
	Metadata   map[string]string `json:"metadata" validate:"max=20,dive,keys,min=1,max=64,metadata_key,endkeys,max=512"`
}

type sourceDTO struct {
	Type     string `json:"type" validate:"required,oneof=url whatsapp_cloud twilio dialog360"`
	MediaID  string `json:"media_id" validate:"required_if=Type whatsapp_cloud,required_if=Type dialog360,omitempty,provider_media_id"`
	URL      string `json:"url" validate:"required_if=Type url,required_if=Type twilio,omitempty,max=2048,url"`
	MimeType string `json:"mime_type" validate:"omitempty,max=255"`
	SHA256   string `json:"sha256" validate:"omitempty,max=128"`
	FileSize *int64 `json:"file_size" validate:"omitempty,min=0"`
	Filename string `json:"filename" validate:"omitempty,max=255"`
}

type messageDTO struct {
	ID        string `json:"id" validate:"max=256"`
	From      string `json:"from" validate:"max=64"`
	Timestamp string `json:"timestamp" validate:"omitempty,message_time"`
	Caption   string `json:"caption" validate:"max=4096"`
}

// tagRequest is the body of POST /v1/media/{id}/tags.
type tagRequest struct {
	Add    []string `json:"add" validate:"required_without=Remove,max=50,dive,min=1,max=64"`
	Remove []string `json:"remove" validate:"required_without=Add,max=50,dive,min=1,max=64"`
}

var (
	customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:@+\-]*$`)
	metadataKey       = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	providerMediaID   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	unixSeconds       = regexp.MustCompile(`^[0-9]{1,12}$`)
)

func newValidator() *validator.Validate {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			return ""
		}
		return name
	})
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	must(v.RegisterValidation("customer_id", func(fl validator.FieldLevel) bool { return customerIDPattern.MatchString(fl.Field().String()) }))
	must(v.RegisterValidation("metadata_key", func(fl validator.FieldLevel) bool { return metadataKey.MatchString(fl.Field().String()) }))
	must(v.RegisterValidation("provider_media_id", func(fl validator.FieldLevel) bool { return providerMediaID.MatchString(fl.Field().String()) }))
	must(v.RegisterValidation("message_time", func(fl validator.FieldLevel) bool {
		_, err := parseMessageTime(fl.Field().String())
		return err == nil
	}))
	return v
}

var validate = newValidator()

// parseMessageTime reads RFC 3339 or WhatsApp's unix seconds as a string.
func parseMessageTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if unixSeconds.MatchString(s) {
		n, _ := strconv.ParseInt(s, 10, 64)
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Parse(time.RFC3339, s)
}

// bindJSON decodes a JSON body strictly (unknown fields and trailing data
// are errors) and validates it, reporting field-level problems.
func bindJSON(c *gin.Context, dst any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return apperr.New(apperr.Invalid, "the request body must hold exactly one JSON object")
	}
	if err := validate.Struct(dst); err != nil {
		var ves validator.ValidationErrors
		if errors.As(err, &ves) {
			return validationProblem(ves)
		}
		return apperr.Wrap(apperr.Invalid, err, "invalid request body")
	}
	return nil
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return apperr.New(apperr.Invalid, "malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		ptr := "/" + strings.ReplaceAll(typ.Field, ".", "/")
		return apperr.WithFields("a field has the wrong type", apperr.FieldError{Pointer: ptr, Detail: "must be " + jsonTypeName(typ.Type)})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return apperr.WithFields("unknown field", apperr.FieldError{Pointer: "/" + name, Detail: "is not a known field"})
	case errors.Is(err, io.EOF):
		return apperr.New(apperr.Invalid, "the request body is empty")
	default:
		return apperr.Wrap(apperr.Invalid, err, "malformed JSON")
	}
}

func jsonTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice:
		return "an array"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "an object"
	}
	return "of another type"
}

func validationProblem(ves validator.ValidationErrors) error {
	fields := make([]apperr.FieldError, 0, len(ves))
	for _, fe := range ves {
		fields = append(fields, apperr.FieldError{Pointer: pointerOf(fe.Namespace()), Detail: describe(fe)})
	}
	return apperr.WithFields("the request body is invalid", fields...)
}

// pointerOf turns "archiveRequest.source.url" or "tagRequest.add[2]" into a
// JSON Pointer ("/source/url", "/add/2").
func pointerOf(ns string) string {
	_, rest, _ := strings.Cut(ns, ".")
	var b strings.Builder
	for _, part := range strings.Split(rest, ".") {
		name, idx, hasIdx := strings.Cut(part, "[")
		b.WriteString("/" + name)
		if hasIdx {
			b.WriteString("/" + strings.TrimSuffix(idx, "]"))
		}
	}
	return b.String()
}

func describe(fe validator.FieldError) string {
	switch fe.Tag() {
	case "required", "required_if":
		return "is required"
	case "required_without":
		return "give add or remove (or both)"
	case "max":
		if fe.Kind() == reflect.Slice || fe.Kind() == reflect.Map {
			return fmt.Sprintf("at most %s entries", fe.Param())
		}
		return fmt.Sprintf("at most %s characters", fe.Param())
	case "min":
		if fe.Kind() == reflect.Int64 || fe.Kind() == reflect.Int {
			return fmt.Sprintf("must be at least %s", fe.Param())
		}
		return fmt.Sprintf("at least %s characters", fe.Param())
	case "oneof":
		return "must be one of: " + strings.ReplaceAll(fe.Param(), " ", ", ")
	case "url":
		return "must be an absolute http or https URL"
	case "customer_id":
		return "letters, digits and _ . : @ + - only, starting with a letter or digit"
	case "metadata_key":
		return "metadata keys use letters, digits, _ . - only"
	case "provider_media_id":
		return "letters, digits, _ and - only, at most 128"
	case "message_time":
		return "must be RFC 3339 or unix seconds"
	}
	return "is invalid (" + fe.Tag() + ")"
}

// toArchiveInput converts the DTO to the domain input.
func (r *archiveRequest) toArchiveInput() media.ArchiveInput {
	in := media.ArchiveInput{
		CustomerID: r.CustomerID,
		Kind:       media.Kind(r.Kind),
		Source:     media.SourceRequest{Type: r.Source.Type, MediaID: r.Source.MediaID, URL: r.Source.URL},
		Hints:      media.SourceHints{MimeType: r.Source.MimeType, SHA256: r.Source.SHA256, Filename: r.Source.Filename},
		Tags:       r.Tags,
		Metadata:   r.Metadata,
	}
	if r.Source.FileSize != nil {
		in.Hints.FileSize = *r.Source.FileSize
	}
	if m := r.Message; m != nil {
		ts, _ := parseMessageTime(m.Timestamp) // validated already
		in.Message = media.Message{ID: m.ID, From: m.From, Timestamp: ts, Caption: m.Caption}
	}
	return in
}

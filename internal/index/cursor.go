package index

import (
	"encoding/base64"

	"github.com/chatvault/chatvault/internal/apperr"
)

// cursorV1 leads every cursor, so a future member format can reject (or
// translate) old cursors instead of misreading them.
const cursorV1 byte = 1

// encodeCursor makes the opaque cursor that resumes a listing after member.
func encodeCursor(member string) string {
	b := make([]byte, 0, 1+len(member))
	b = append(b, cursorV1)
	b = append(b, member...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the member a cursor resumes after.
func decodeCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != cursorV1 {
		return "", invalidCursor()
	}
	mem := string(b[1:])
	if _, ok := memberID(mem); !ok {
		return "", invalidCursor()
	}
	return mem, nil
}

func invalidCursor() error {
	return apperr.WithFields("invalid cursor", apperr.FieldError{
		Pointer: "query:cursor",
		Detail:  "not a cursor from this listing; start again without one",
	})
}

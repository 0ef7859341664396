package webhook

import (
	"reflect"
	"strings"
	"testing"

	"github.com/chatvault/chatvault/internal/apperr"
)

func ptr[T any](v T) *T { return &v }

func TestRulesTags(t *testing.T) {
	rules, err := CompileRules([]TagRule{
		{Tag: "Invoice", CaptionContains: []string{"invoice", "RECHNUNG"}},
		{Tag: "receipt-photo", Kinds: []string{"image"}, CaptionRegex: `(?i)\breceipt\b`},
		{Tag: "audio-file", Kinds: []string{"audio"}, Voice: ptr(false)},
		{Tag: "spoken", Voice: ptr(true)},
		{Tag: "visual", Kinds: []string{"Image", " video "}},
		{Tag: "order-ref", CaptionRegex: `#\d{4}`},
		{Tag: " invoice "}, // same tag after normalising, and matches all: no duplicate
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   InboundMedia
		want []string
	}{
		{"voice note gets the built-in tag", InboundMedia{Kind: "audio", Voice: true}, []string{"invoice", "spoken", "voice-note"}},
		{"audio file is not a voice note", InboundMedia{Kind: "audio"}, []string{"audio-file", "invoice"}},
		{"image with receipt caption", InboundMedia{Kind: "image", Caption: "Invoice #4821 — photo of the Receipt"}, []string{"invoice", "order-ref", "receipt-photo", "visual"}},
		{"case-insensitive contains", InboundMedia{Kind: "document", Caption: "Ihre rechnung"}, []string{"invoice"}},
		{"regex is not a substring rule", InboundMedia{Kind: "image", Caption: "receipts"}, []string{"invoice", "visual"}},
		{"kind mismatch", InboundMedia{Kind: "document", Caption: "receipt"}, []string{"invoice"}},
		{"video", InboundMedia{Kind: "video"}, []string{"invoice", "visual"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rules.Tags(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Tags() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRulesAllConditionsMustHold(t *testing.T) {
	rules, err := CompileRules([]TagRule{{
		Tag:             "urgent-photo",
		Kinds:           []string{"image"},
		Voice:           ptr(false),
		CaptionContains: []string{"urgent", "asap"},
		CaptionRegex:    `!$`,
	}})
	if err != nil {
		t.Fatal(err)
	}
	match := InboundMedia{Kind: "image", Caption: "ASAP please!"}
	if got := rules.Tags(match); !reflect.DeepEqual(got, []string{"urgent-photo"}) {
		t.Errorf("Tags(match) = %q", got)
	}
	for name, in := range map[string]InboundMedia{
		"wrong kind":     {Kind: "video", Caption: "ASAP please!"},
		"no substring":   {Kind: "image", Caption: "soon please!"},
		"regex fails":    {Kind: "image", Caption: "ASAP please"},
		"empty caption":  {Kind: "image"},
		"voice mismatch": {Kind: "image", Caption: "ASAP please!", Voice: true},
	} {
		if got := rules.Tags(in); len(got) != 0 && !(name == "voice mismatch" && reflect.DeepEqual(got, []string{"voice-note"})) {
			t.Errorf("%s: Tags() = %q, want none", name, got)
		}
	}
}

func TestRulesNilAndEmpty(t *testing.T) {
	var none *Rules
	if got := none.Tags(InboundMedia{Kind: "audio", Voice: true}); !reflect.DeepEqual(got, []string{VoiceNoteTag}) {
		t.Errorf("nil Rules: Tags() = %q", got)
	}
	empty, err := CompileRules(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := empty.Tags(InboundMedia{Kind: "image"}); got == nil || len(got) != 0 {
		t.Errorf("empty Rules: Tags() = %#v, want an empty slice", got)
	}
}

func TestCompileRulesRefuses(t *testing.T) {
	_, err := CompileRules([]TagRule{
		{Tag: "ok"},
		{Tag: ""},
		{Tag: "a,b"},
		{Tag: strings.Repeat("x", 65)},
		{Tag: "k", Kinds: []string{"image", "gif"}},
		{Tag: "c", CaptionContains: []string{"x", "  "}},
		{Tag: "r", CaptionRegex: `(unclosed`},
	})
	e, ok := apperr.As(err)
	if !ok || e.Kind != apperr.Invalid {
		t.Fatalf("err = %v, want invalid", err)
	}
	var got []string
	for _, f := range e.Fields {
		got = append(got, f.Pointer)
	}
	want := []string{"/rules/1/tag", "/rules/2/tag", "/rules/3/tag", "/rules/4/kinds/1", "/rules/5/caption_contains/1", "/rules/6/caption_regex"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pointers = %q, want %q", got, want)
	}
}

package webhook

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/chatvault/chatvault/internal/apperr"
	"github.com/chatvault/chatvault/internal/media"
)

// VoiceNoteTag is added to every voice note, whatever the rules say, so CRM
// users can always filter recorded messages from shared audio files.
const VoiceNoteTag = "voice-note"

// TagRule adds Tag to media that matches every condition it sets; an unset
// condition matches anything.
type TagRule struct {
	Tag             string   // the tag to add
	Kinds           []string // match if the media kind is one of these (empty: any)
	Voice           *bool    // match voice notes only (true) or non-voice media only (false)
	CaptionContains []string // match if the caption contains any of these, ignoring case (empty: any)
	CaptionRegex    string   // optional Go regexp (RE2: linear time, safe on tenant input) on the caption
}

// Rules are compiled TagRules. A nil *Rules applies only the built-in tag.
type Rules struct {
	rules []compiledRule
}

type compiledRule struct {
	tag      string
	kinds    map[string]bool
	voice    *bool
	contains []string // lower-cased
	re       *regexp.Regexp
}

// CompileRules validates and compiles rules once, so Tags does no parsing
// per message. Tags are normalised as the archive API does (trimmed, lower
// case), so what a rule adds is what the record shows. Errors are
// apperr.Invalid with one field per problem, pointing at /rules/N/….
func CompileRules(rules []TagRule) (*Rules, error) {
	out := &Rules{rules: make([]compiledRule, 0, len(rules))}
	var fields []apperr.FieldError
	for i, r := range rules {
		ptr := fmt.Sprintf("/rules/%d", i)
		tags, err := media.NormalizeTags([]string{r.Tag}, ptr)
		if err != nil {
			fields = append(fields, apperr.FieldError{Pointer: ptr + "/tag", Detail: tagDetail(err)})
			continue
		}
		c := compiledRule{tag: tags[0], voice: r.Voice}
		if len(r.Kinds) > 0 {
			c.kinds = map[string]bool{}
			for j, k := range r.Kinds {
				k = strings.ToLower(strings.TrimSpace(k))
				if !media.Kind(k).Valid() {
					fields = append(fields, apperr.FieldError{Pointer: fmt.Sprintf("%s/kinds/%d", ptr, j), Detail: "must be one of audio, video, image, document, sticker"})
					continue
				}
				c.kinds[k] = true
			}
		}
		for j, s := range r.CaptionContains {
			if strings.TrimSpace(s) == "" {
				// "" is a substring of every caption: almost certainly a
				// configuration slip, not a wish to tag everything.
				fields = append(fields, apperr.FieldError{Pointer: fmt.Sprintf("%s/caption_contains/%d", ptr, j), Detail: "must not be empty"})
				continue
			}
			c.contains = append(c.contains, strings.ToLower(s))
		}
		if r.CaptionRegex != "" {
			re, err := regexp.Compile(r.CaptionRegex)
			if err != nil {
				fields = append(fields, apperr.FieldError{Pointer: ptr + "/caption_regex", Detail: err.Error()})
				continue
			}
			c.re = re
		}
		out.rules = append(out.rules, c)
	}
	if len(fields) > 0 {
		return nil, apperr.WithFields("invalid tag rules", fields...)
	}
	return out, nil
}

func tagDetail(err error) string {
	if e, ok := apperr.As(err); ok && len(e.Fields) > 0 {
		return e.Fields[0].Detail
	}
	return err.Error()
}

// Tags returns the tags of every rule in matches, plus VoiceNoteTag for a
// voice note, sorted and without duplicates.
func (r *Rules) Tags(in InboundMedia) []string {
	set := map[string]bool{}
	if in.Voice {
		set[VoiceNoteTag] = true
	}
	if r != nil {
		lowerCaption := strings.ToLower(in.Caption)
		for i := range r.rules {
			if r.rules[i].matches(in, lowerCaption) {
				set[r.rules[i].tag] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func (c *compiledRule) matches(in InboundMedia, lowerCaption string) bool {
	if c.kinds != nil && !c.kinds[in.Kind] {
		return false
	}
	if c.voice != nil && *c.voice != in.Voice {
		return false
	}
	if len(c.contains) > 0 {
		found := false
		for _, s := range c.contains {
			if strings.Contains(lowerCaption, s) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return c.re == nil || c.re.MatchString(in.Caption)
}

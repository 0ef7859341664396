package source

import (
	"context"
	"net/url"

	"github.com/chatvault/chatvault/internal/apperr"
)

// dialog360KeyHeader carries a 360dialog API key.
const dialog360KeyHeader = "D360-API-KEY"

// fetchDialog360 opens WhatsApp media through 360dialog, which proxies
// Meta's media endpoints: GET {base}/{media-id} answers Meta's media object,
// and the lookaside URL in it is downloaded by requesting its path and query
// on 360dialog's own host, with the same key. The key never goes to Meta.
func (f *Fetcher) fetchDialog360(ctx context.Context, s Settings, id string) (*Result, error) {
	if err := validateMediaID(id); err != nil {
		return nil, err
	}
	if s.Dialog360.APIKey == "" {
		detail := "dialog360 sources are not configured for this tenant (dialog360.api_key is empty)"
		return nil, apperr.WithFields(detail, apperr.FieldError{Pointer: "/source/type", Detail: detail})
	}
	raw := s.Dialog360.BaseURL
	if raw == "" {
		raw = DefaultDialog360BaseURL
	}
	base, err := configBase(raw, "dialog360.base_url")
	if err != nil {
		return nil, err
	}
	api := &metaAPI{
		name: "360dialog", errLabel: "WhatsApp error", typ: TypeDialog360,
		base: base, authHeader: dialog360KeyHeader, authValue: s.Dialog360.APIKey,
		credential: "API key", credSetting: "dialog360.api_key", baseSetting: "dialog360.base_url",
		needsMessage: "check that dialog360.api_key belongs to the WhatsApp number that received this media",
		mediaHost:    "360dialog's media download",
		download: func(u *url.URL) (*url.URL, bool) {
			return &url.URL{
				Scheme:   base.Scheme,
				Host:     base.Host,
				Path:     u.Path,
				RawPath:  u.RawPath,
				RawQuery: u.RawQuery,
			}, true
		},
	}
	return f.fetchMeta(ctx, api, parseAllowlist(s.Allowlist), id)
}

package sourcetest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, rawURL, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

type graphErr struct {
	Error struct {
		Message, Type, FBTraceID string
		Code                     int
		Subcode                  int `json:"error_subcode"`
	}
}

func TestGraphFollowsMetaDocs(t *testing.T) {
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	g := NewGraph(t, "tok", WithClock(func() time.Time { return start }))
	info := g.AddMedia("1234", Bytes([]byte("hello")), "image/jpeg")

	// Lookup without or with a wrong token: 401, OAuthException 190.
	for _, tok := range []string{"", "wrong"} {
		resp, body := get(t, g.BaseURL+"/1234", tok)
		var e graphErr
		if resp.StatusCode != 401 || json.Unmarshal(body, &e) != nil || e.Error.Code != 190 || e.Error.Type != "OAuthException" {
			t.Errorf("token %q: %d %s", tok, resp.StatusCode, body)
		}
	}
	// Unknown ID: 400, code 100, subcode 33.
	resp, body := get(t, g.BaseURL+"/999", "tok")
	var e graphErr
	if resp.StatusCode != 400 || json.Unmarshal(body, &e) != nil || e.Error.Code != 100 || e.Error.Subcode != 33 {
		t.Errorf("unknown id: %d %s", resp.StatusCode, body)
	}

	// Lookup: the documented media object, file_size as a string.
	resp, body = get(t, g.BaseURL+"/1234", "tok")
	var m map[string]any
	if resp.StatusCode != 200 || json.Unmarshal(body, &m) != nil {
		t.Fatalf("lookup: %d %s", resp.StatusCode, body)
	}
	if m["messaging_product"] != "whatsapp" || m["id"] != "1234" || m["mime_type"] != "image/jpeg" ||
		m["sha256"] != info.SHA256 || m["file_size"] != "5" {
		t.Errorf("lookup body %v", m)
	}
	mediaURL := m["url"].(string)

	// Download needs the token, and a URL that is neither tampered with
	// nor expired.
	if resp, _ := get(t, mediaURL, ""); resp.StatusCode != 401 {
		t.Errorf("download without token: %d", resp.StatusCode)
	}
	u, _ := url.Parse(mediaURL)
	q := u.Query()
	q.Set("ext", "9999999999")
	u.RawQuery = q.Encode()
	if resp, _ := get(t, u.String(), "tok"); resp.StatusCode != 403 {
		t.Errorf("tampered URL: %d", resp.StatusCode)
	}
	resp, body = get(t, mediaURL, "tok")
	if resp.StatusCode != 200 || string(body) != "hello" || resp.Header.Get("Content-Type") != "image/jpeg" || resp.ContentLength != 5 {
		t.Errorf("download: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	g.Advance(5 * time.Minute)
	if resp, _ := get(t, mediaURL, "tok"); resp.StatusCode != 404 {
		t.Errorf("expired URL: %d", resp.StatusCode)
	}
	if g.Resolves() != 4 || g.ResolvesOf("1234") != 3 || g.Downloads() != 4 || g.DownloadsOf("1234") != 4 {
		t.Errorf("counters: resolves %d/%d downloads %d/%d", g.Resolves(), g.ResolvesOf("1234"), g.Downloads(), g.DownloadsOf("1234"))
	}

	// DELETE /{media-id}.
	req, _ := http.NewRequest(http.MethodDelete, g.BaseURL+"/1234", nil)
	req.Header.Set("Authorization", "Bearer tok")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("delete: %v %v", resp, err)
	}
	if resp, _ := get(t, g.BaseURL+"/1234", "tok"); resp.StatusCode != 400 {
		t.Errorf("deleted media still resolves: %d", resp.StatusCode)
	}
}

func TestGraphMediaOptions(t *testing.T) {
	g := NewGraph(t, "tok")
	g.AddMedia("1", Bytes([]byte("x")), "audio/ogg", WithChecksum(ChecksumBase64), WithFileSizeNumber())
	g.AddMedia("2", Bytes([]byte("x")), "audio/ogg", WithoutChecksum(), WithoutFileSize())
	_, body := get(t, g.BaseURL+"/1", "tok")
	if !strings.Contains(string(body), `"file_size":1`) || !strings.Contains(string(body), `"sha256":"LXEWQrcm`) {
		t.Errorf("options ignored: %s", body)
	}
	_, body = get(t, g.BaseURL+"/2", "tok")
	if strings.Contains(string(body), "file_size") || strings.Contains(string(body), "sha256") {
		t.Errorf("omitted fields present: %s", body)
	}
}

func TestGeneratedIsDeterministicAndStreamed(t *testing.T) {
	a, b := Generated(3*MiB, 1), Generated(3*MiB, 1)
	if a.SHA256() != b.SHA256() || a.SHA256() == Generated(3*MiB, 2).SHA256() {
		t.Error("generated content is not a pure function of its seed")
	}
	n, _ := io.Copy(io.Discard, a.Open())
	if n != 3*MiB || a.Size() != 3*MiB {
		t.Errorf("generated %d bytes, size %d", n, a.Size())
	}
}

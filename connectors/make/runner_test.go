package make_test

// runner executes the app's requests the way Make does, in the simplest
// form the app needs: it fills the request templates (Base and component),
// leaves out keys whose value is empty, sends the request, maps errors by
// status with response.error, and applies output, iterate, limit, data,
// metadata and pagination.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// makeError is what Make would show for a failed request.
type makeError struct {
	Type    string
	Message string
	Status  int
}

func (e *makeError) Error() string { return fmt.Sprintf("%s: %s", e.Type, e.Message) }

// makeResult is one run of a component.
type makeResult struct {
	Status   int
	Header   http.Header
	Body     any    // the last answer, parsed
	RawBody  []byte // the last answer
	Outputs  []any  // the bundles
	Data     map[string]any
	Metadata map[string]any
	Err      *makeError
	Sent     []*http.Request // every request, in order
}

// exchange sees every request and answer, for contract checks; t is the
// test the runner runs for.
type exchange func(t testing.TB, req *http.Request, reqBody []byte, status int, header http.Header, body []byte)

type runner struct {
	t       testing.TB
	app     *appDef
	conn    map[string]any // the connection's parameters (baseUrl, apiKey)
	client  *http.Client
	observe exchange
}

func newRunner(t testing.TB, a *appDef, baseURL, apiKey string, observe exchange) *runner {
	return &runner{t: t, app: a, conn: map[string]any{"baseUrl": baseURL, "apiKey": apiKey}, client: &http.Client{}, observe: observe}
}

// in returns a copy of the runner that reports to t (a subtest).
func (r *runner) in(t testing.TB) *runner {
	c := *r
	c.t = t
	return &c
}

// testConnection runs the connection's validation request.
func (r *runner) testConnection() makeResult {
	c := r.app.get("connection", "chatvault")
	return r.execute(c.request("communication"), scope{"parameters": r.conn}, false)
}

// module runs a module with the given parameters.
func (r *runner) module(name string, params map[string]any) makeResult {
	c := r.app.get("module", name)
	return r.execute(c.request("communication"), scope{"parameters": params, "connection": r.conn}, true)
}

// rpc runs a remote procedure.
func (r *runner) rpc(name string, params map[string]any) makeResult {
	c := r.app.get("rpc", name)
	return r.execute(c.request("communication"), scope{"parameters": params, "connection": r.conn}, true)
}

// attach registers a webhook URL as Make does when a user creates a hook.
func (r *runner) attach(hook, webhookURL string, params map[string]any) makeResult {
	c := r.app.get("webhook", hook)
	return r.execute(c.request("attach"), scope{"parameters": params, "connection": r.conn, "webhook": map[string]any{"url": webhookURL}}, true)
}

// detach removes it again; data is what attach stored.
func (r *runner) detach(hook string, params, data map[string]any) makeResult {
	c := r.app.get("webhook", hook)
	w := map[string]any{}
	for k, v := range data {
		w[k] = v
	}
	return r.execute(c.request("detach"), scope{"parameters": params, "connection": r.conn, "webhook": w}, true)
}

// incoming turns a payload the webhook received into the trigger's bundle.
func incoming(t testing.TB, a *appDef, hook string, body []byte, header http.Header) any {
	t.Helper()
	var parsed any
	if err := json.Unmarshal(body, &parsed); err != nil {
		t.Fatalf("webhook payload is not JSON: %v", err)
	}
	spec := a.get("webhook", hook).request("communication")
	sc := scope{"body": parsed, "headers": lowerHeaders(header)}
	if cond, ok := spec["condition"]; ok {
		v, err := evalDeep(cond, sc)
		if err != nil {
			t.Fatal(err)
		}
		if !truthy(v) {
			return nil
		}
	}
	out, ok := spec["output"]
	if !ok {
		return parsed
	}
	v, err := evalDeep(out, sc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func lowerHeaders(h http.Header) map[string]any {
	out := map[string]any{}
	for k, v := range h {
		out[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	return out
}

// maxPages is Make's limit of pagination requests per module run.
const maxPages = 50

func (r *runner) execute(spec map[string]any, sc scope, usesBase bool) makeResult {
	r.t.Helper()
	var res makeResult
	if spec == nil {
		r.t.Fatal("no request to run")
	}
	base := r.app.Base
	method := strings.ToUpper(str(spec["method"]))
	if method == "" {
		method = "GET"
	}
	target, err := r.url(spec["url"], sc, usesBase)
	if err != nil {
		r.t.Fatal(err)
	}
	headers := map[string]any{}
	if usesBase {
		for k, v := range asMap(base["headers"]) {
			headers[k] = v
		}
	}
	for k, v := range asMap(spec["headers"]) {
		headers[k] = v
	}
	hv, err := evalDeep(headers, sc)
	if err != nil {
		r.t.Fatalf("headers: %v", err)
	}
	qv, err := evalDeep(asMap(spec["qs"]), sc)
	if err != nil {
		r.t.Fatalf("qs: %v", err)
	}
	qs, _ := qv.(map[string]any)
	var body []byte
	if b, ok := spec["body"]; ok {
		bv, err := evalDeep(b, sc)
		if err != nil {
			r.t.Fatalf("body: %v", err)
		}
		if bv == nil {
			bv = map[string]any{}
		}
		if body, err = json.Marshal(bv); err != nil {
			r.t.Fatal(err)
		}
	}

	resp := asMap(spec["response"])
	limit := -1
	if l, ok := resp["limit"]; ok {
		lv, err := evalDeep(l, sc)
		if err != nil {
			r.t.Fatal(err)
		}
		if f, ok := lv.(float64); ok {
			limit = int(f)
		}
	}
	pagination := asMap(spec["pagination"])

	for {
		req, err := http.NewRequest(method, target+encodeQuery(qs), bytes.NewReader(body))
		if err != nil {
			r.t.Fatal(err)
		}
		for k, v := range asMap(hv) {
			req.Header.Set(k, text(v))
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		res.Sent = append(res.Sent, req)
		httpResp, err := r.client.Do(req)
		if err != nil {
			// Make reports a failed connection as a ConnectionError.
			res.Err = &makeError{Type: "ConnectionError", Message: err.Error()}
			return res
		}
		raw, err := io.ReadAll(httpResp.Body)
		httpResp.Body.Close()
		if err != nil {
			r.t.Fatal(err)
		}
		if r.observe != nil {
			r.observe(r.t, req, body, httpResp.StatusCode, httpResp.Header, raw)
		}
		res.Status, res.Header, res.RawBody = httpResp.StatusCode, httpResp.Header, raw
		res.Body = nil
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &res.Body); err != nil {
				res.Body = string(raw)
			}
		}
		psc := scope{}
		for k, v := range sc {
			psc[k] = v
		}
		psc["body"], psc["headers"], psc["statusCode"] = res.Body, lowerHeaders(httpResp.Header), float64(httpResp.StatusCode)

		if httpResp.StatusCode >= 400 {
			res.Err = r.mapError(spec, usesBase, psc)
			return res
		}

		// Bundles of this page.
		var items []any
		if it, ok := resp["iterate"]; ok {
			v, err := evalDeep(it, psc)
			if err != nil {
				r.t.Fatal(err)
			}
			items, _ = v.([]any)
			for _, item := range items {
				isc := scope{}
				for k, v := range psc {
					isc[k] = v
				}
				isc["item"] = item
				out := any(item)
				if o, ok := resp["output"]; ok {
					if out, err = evalDeep(o, isc); err != nil {
						r.t.Fatal(err)
					}
				}
				res.Outputs = append(res.Outputs, out)
			}
		} else {
			out := res.Body
			if o, ok := resp["output"]; ok {
				if out, err = evalDeep(o, psc); err != nil {
					r.t.Fatal(err)
				}
			}
			if out != nil {
				res.Outputs = append(res.Outputs, out)
			}
		}
		for key, dst := range map[string]*map[string]any{"data": &res.Data, "metadata": &res.Metadata} {
			if d, ok := resp[key]; ok {
				v, err := evalDeep(d, psc)
				if err != nil {
					r.t.Fatal(err)
				}
				*dst, _ = v.(map[string]any)
			}
		}
		if limit >= 0 && len(res.Outputs) >= limit {
			res.Outputs = res.Outputs[:limit]
			return res
		}

		// Next page: Make stops on an empty page, a false condition, or
		// its own request limit.
		if pagination == nil || len(items) == 0 || psc["body"] == nil {
			return res
		}
		if cond, ok := pagination["condition"]; ok {
			v, err := evalDeep(cond, psc)
			if err != nil {
				r.t.Fatal(err)
			}
			if !truthy(v) {
				return res
			}
		}
		if pageNo := len(res.Sent); pageNo >= maxPages {
			r.t.Fatalf("pagination did not stop after %d requests", pageNo)
		}
		next, err := evalDeep(asMap(pagination["qs"]), psc)
		if err != nil {
			r.t.Fatal(err)
		}
		if pagination["mergeWithParent"] == false {
			qs = map[string]any{}
		}
		merged := map[string]any{}
		for k, v := range qs {
			merged[k] = v
		}
		for k, v := range asMap(next) {
			merged[k] = v
		}
		qs = merged
		if u, ok := pagination["url"]; ok {
			if target, err = r.url(u, psc, usesBase); err != nil {
				r.t.Fatal(err)
			}
		}
	}
}

// url renders a request URL: a relative one goes under the Base's baseUrl,
// and values put into the path are path-escaped, as Make encodes them.
func (r *runner) url(v any, sc scope, usesBase bool) (string, error) {
	tpl, err := parseTemplate(str(v))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, p := range tpl.parts {
		if s, ok := p.(string); ok {
			b.WriteString(s)
			continue
		}
		val, err := evalNode(p, sc)
		if err != nil {
			return "", err
		}
		if i == 0 {
			b.WriteString(text(val)) // the base URL itself
		} else {
			b.WriteString(url.PathEscape(text(val)))
		}
	}
	u := b.String()
	if usesBase && strings.HasPrefix(u, "/") {
		baseURL, err := evalString(str(r.app.Base["baseUrl"]), sc)
		if err != nil {
			return "", err
		}
		u = text(baseURL) + u
	}
	return u, nil
}

func encodeQuery(qs map[string]any) string {
	if len(qs) == 0 {
		return ""
	}
	vals := url.Values{}
	for k, v := range qs {
		if arr, ok := v.([]any); ok {
			for _, x := range arr {
				vals.Add(k, text(x))
			}
			continue
		}
		vals.Set(k, text(v))
	}
	return "?" + vals.Encode()
}

// mapError applies response.error: the component's own, or the Base's.
func (r *runner) mapError(spec map[string]any, usesBase bool, sc scope) *makeError {
	errSpec := asMap(asMap(spec["response"])["error"])
	if errSpec == nil && usesBase {
		errSpec = asMap(asMap(r.app.Base["response"])["error"])
	}
	status := int(sc["statusCode"].(float64))
	e := &makeError{Type: "RuntimeError", Status: status}
	if t := str(errSpec["type"]); t != "" {
		e.Type = t
	}
	msg := errSpec["message"]
	if per := asMap(errSpec[strconv.Itoa(status)]); per != nil {
		if t := str(per["type"]); t != "" {
			e.Type = t
		}
		msg = per["message"]
	}
	if msg == nil {
		e.Message = fmt.Sprintf("[%d] %s", status, http.StatusText(status))
		return e
	}
	v, err := evalDeep(msg, sc)
	if err != nil {
		r.t.Fatalf("error message: %v", err)
	}
	e.Message = text(v)
	return e
}

// evalDeep renders templates inside objects and arrays. Keys whose value
// comes out empty are left out, as Make leaves out parameters the user did
// not fill.
func evalDeep(v any, sc scope) (any, error) {
	switch v := v.(type) {
	case string:
		return evalString(v, sc)
	case map[string]any:
		out := map[string]any{}
		for k, x := range v {
			val, err := evalDeep(x, sc)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if !empty(val) {
				out[k] = val
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(v))
		for _, x := range v {
			val, err := evalDeep(x, sc)
			if err != nil {
				return nil, err
			}
			out = append(out, val)
		}
		return out, nil
	}
	return v, nil
}

package contract

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"gopkg.in/yaml.v3"
)

// schemaFiles lists schemas/*.json by file name.
func schemaFiles(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "schemas", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no schemas/*.json")
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)
	}
	return names
}

func readSchema(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "schemas", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// Every schema file is a titled, described, self-identified JSON Schema
// 2020-12 document whose examples are valid.
func TestSchemaFilesAreWellFormedAndTheirExamplesValid(t *testing.T) {
	c := checker(t)
	for _, name := range schemaFiles(t) {
		t.Run(name, func(t *testing.T) {
			s := readSchema(t, name)
			if got := s["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
				t.Errorf("$schema = %v", got)
			}
			if got := s["$id"]; got != name {
				t.Errorf("$id = %v, want %q", got, name)
			}
			for _, k := range []string{"title", "description"} {
				if v, _ := s[k].(string); strings.TrimSpace(v) == "" {
					t.Errorf("no %s", k)
				}
			}
			examples, _ := s["examples"].([]any)
			if len(examples) == 0 {
				t.Fatal("no examples")
			}
			for i, ex := range examples {
				b, err := json.Marshal(ex)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.CheckSchema(name, b); err != nil {
					t.Errorf("examples[%d]: %v", i, err)
				}
			}
		})
	}
}

// Objects are closed: every object schema in schemas/ says what happens to
// properties it does not name.
func TestObjectSchemasAreClosed(t *testing.T) {
	for _, name := range schemaFiles(t) {
		walkSchemas(readSchema(t, name), "#", func(ptr string, node map[string]any, _ bool) {
			if node["type"] != "object" {
				return
			}
			if _, ok := node["additionalProperties"]; !ok {
				t.Errorf("%s %s: an object schema without additionalProperties", name, ptr)
			}
		})
	}
}

// TestRequiredPropertiesAreDeclared replaces Redocly's
// no-required-schema-properties-undefined, which does not see the properties
// an if/then branch inherits from the schema around it.
func TestRequiredPropertiesAreDeclared(t *testing.T) {
	docs := map[string]any{}
	for _, name := range schemaFiles(t) {
		docs["schemas/"+name] = readSchema(t, name)
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var spec any
	if err := yaml.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	docs["openapi.yaml"] = spec

	for name, doc := range docs {
		checkRequired(t, name, "#", doc, nil)
	}
}

// inScope are the keywords whose subschemas apply to the same instance, and
// so see the properties declared around them.
var inScope = map[string]bool{"allOf": true, "anyOf": true, "oneOf": true, "not": true, "if": true, "then": true, "else": true}

func checkRequired(t *testing.T, file, ptr string, node any, declared []string) {
	t.Helper()
	switch node := node.(type) {
	case map[string]any:
		here := slices.Clone(declared)
		if props, ok := node["properties"].(map[string]any); ok {
			for k := range props {
				here = append(here, k)
			}
		}
		if req, ok := node["required"].([]any); ok { // a boolean required is a parameter's or a header's
			for _, r := range req {
				if name, _ := r.(string); !slices.Contains(here, name) {
					t.Errorf("%s %s: requires %q, which no enclosing schema declares", file, ptr, r)
				}
			}
		}
		for k, v := range node {
			if inScope[k] {
				checkRequired(t, file, ptr+"/"+k, v, here)
			} else {
				checkRequired(t, file, ptr+"/"+k, v, nil)
			}
		}
	case []any:
		for i, v := range node {
			checkRequired(t, file, ptr+"/"+strconv.Itoa(i), v, declared)
		}
	}
}

// walkSchemas calls fn for every map in a schema document.
func walkSchemas(node any, ptr string, fn func(ptr string, node map[string]any, root bool)) {
	switch node := node.(type) {
	case map[string]any:
		fn(ptr, node, ptr == "#")
		for k, v := range node {
			if k == "examples" || k == "const" || k == "enum" || k == "default" {
				continue
			}
			walkSchemas(v, ptr+"/"+k, fn)
		}
	case []any:
		for i, v := range node {
			walkSchemas(v, ptr+"/"+strconv.Itoa(i), fn)
		}
	}
}

var scopes = []string{"media:write", "media:read", "media:tag", "media:delete", "hooks:manage", "admin"}

// webhookPrefix holds the provider webhooks: /v1 routes that take no API key
// but the provider's own signature or token, and answer in the provider's
// format.
const webhookPrefix = "/v1/webhooks/"

// keyOnly lists the /v1 operations that any valid API key may call, whatever
// its scopes: they answer 401 without a key but never 403, so they name no
// scope and their one security requirement is the bare key.
var keyOnly = map[string]bool{
	"GET /v1/me": true, // a key asks who it is (connection tests)
}

// successContent lists the media types a /v1 operation may answer a 2xx
// with, beyond application/json: the content download serves the stored
// bytes, Meta's handshake echoes its challenge as text, and Twilio expects
// TwiML.
var successContent = map[string][]string{
	"GET /v1/media/{media_id}/content":   {"*/*"},
	"GET /v1/webhooks/whatsapp/{tenant}": {"text/plain"},
	"POST /v1/webhooks/twilio/{tenant}":  {"text/xml"},
}

// The conventions of section 3 of the design, one operation at a time: scopes,
// request IDs, rate-limit headers, problem+json errors, idempotency keys.
// Provider webhooks follow the providers' rules where those differ: no API
// key or scope, the provider's body format, no Idempotency-Key (providers
// retry with the same message IDs, which are the deduplication key).
func TestOperationConventions(t *testing.T) {
	c := checker(t)
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			t.Run(name, func(t *testing.T) {
				v1 := strings.HasPrefix(path, "/v1/")
				webhook := strings.HasPrefix(path, webhookPrefix)
				if op.OperationID == "" || op.Summary == "" || op.Description == "" {
					t.Error("wants an operationId, a summary and a description")
				}
				checkSecurity(t, op, v1, webhook, keyOnly[name])
				statuses := op.Responses.Map()
				want := []string{"500"}
				switch {
				case webhook:
					// No key, so no 401 unless the provider's credential can
					// be missing; the tenant in the path can be unknown.
					want = []string{"403", "404", "429", "500", "503"}
					if op.RequestBody != nil {
						want = append(want, "401")
					}
				case v1 && keyOnly[name]:
					want = []string{"401", "429", "500", "503"}
					if statuses["403"] != nil {
						t.Error("a route open to any valid key documents 403, which it never answers")
					}
				case v1:
					want = []string{"401", "403", "429", "500", "503"}
				}
				for _, s := range want {
					if statuses[s] == nil {
						t.Errorf("does not document %s", s)
					}
				}
				if op.RequestBody != nil {
					checkRequestBody(t, op, webhook)
				}
				switch {
				case webhook:
					if hasParam(op, "header", "Idempotency-Key") {
						t.Error("a webhook with an Idempotency-Key parameter: providers never send one")
					}
					if !slices.Equal(op.Tags, []string{"webhooks"}) {
						t.Errorf("tags are %v, want [webhooks]", op.Tags)
					}
				case method == "POST" && op.RequestBody != nil && !hasParam(op, "header", "Idempotency-Key"):
					t.Error("a POST with a body but without an Idempotency-Key parameter")
				}
				for status, ref := range statuses {
					checkResponse(t, status, ref.Value, v1)
					if code, _ := strconv.Atoi(status); v1 && code >= 200 && code < 300 && ref.Value.Content != nil {
						allowed := append([]string{"application/json"}, successContent[name]...)
						for _, k := range sortedKeys(ref.Value.Content) {
							if !slices.Contains(allowed, k) {
								t.Errorf("%s: answers %s, want one of %v", status, k, allowed)
							}
						}
					}
				}
			})
		}
	}
}

func checkRequestBody(t *testing.T, op *openapi3.Operation, webhook bool) {
	t.Helper()
	statuses := op.Responses.Map()
	want, content := []string{"400", "413", "415"}, [][]string{{"application/json"}}
	if webhook {
		// Webhooks read the provider's body whatever its Content-Type says,
		// so they never answer 415.
		want = []string{"400", "413"}
		content = [][]string{{"application/json"}, {"application/x-www-form-urlencoded"}}
		if statuses["415"] != nil {
			t.Error("a webhook documents 415, which it never answers")
		}
	}
	for _, s := range want {
		if statuses[s] == nil {
			t.Errorf("takes a body but does not document %s", s)
		}
	}
	keys := sortedKeys(op.RequestBody.Value.Content)
	if !slices.ContainsFunc(content, func(c []string) bool { return slices.Equal(keys, c) }) {
		t.Errorf("request body content is %v, want one of %v", keys, content)
	}
}

// requiredScopes reads x-required-scope: one scope, or a list of scopes any
// one of which will do.
func requiredScopes(t *testing.T, op *openapi3.Operation) []string {
	t.Helper()
	switch v := op.Extensions["x-required-scope"].(type) {
	case nil:
		return nil
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				t.Fatalf("x-required-scope holds %v, not a scope name", e)
			}
			out = append(out, s)
		}
		if len(out) < 2 {
			t.Fatalf("x-required-scope is a list of %d; write one scope as a string", len(out))
		}
		return out
	default:
		t.Fatalf("x-required-scope is %T, want a string or a list of strings", v)
		return nil
	}
}

func checkSecurity(t *testing.T, op *openapi3.Operation, v1, webhook, anyKey bool) {
	t.Helper()
	required := requiredScopes(t, op)
	if !v1 || webhook {
		if len(required) != 0 || op.Security == nil || len(*op.Security) != 0 {
			t.Error("a route outside /v1, or a webhook, must say security: [] and need no scope")
		}
		if webhook && !strings.Contains(op.Description, "Authorisation:") {
			t.Error("a webhook's description must say how it is authorised (Authorisation: ...)")
		}
		return
	}
	if anyKey {
		if len(required) != 0 {
			t.Errorf("x-required-scope is %v on a route open to any valid key", required)
		}
		if op.Security == nil || len(*op.Security) != 1 || (*op.Security)[0]["apiKey"] == nil ||
			len((*op.Security)[0]["apiKey"]) != 0 || len((*op.Security)[0]) != 1 {
			t.Error("a route open to any valid key must say security: [{apiKey: []}]")
		}
		if !strings.Contains(op.Description, "Scope: none") {
			t.Error("the description does not say Scope: none")
		}
		return
	}
	if len(required) == 0 {
		t.Fatalf("no x-required-scope; want one of %v, or a list of them", scopes)
	}
	var quoted []string
	for _, s := range required {
		if !slices.Contains(scopes, s) {
			t.Fatalf("x-required-scope names %q, want one of %v", s, scopes)
		}
		quoted = append(quoted, "`"+s+"`")
	}
	if phrase := "Scope: " + strings.Join(quoted, " or "); !strings.Contains(op.Description, phrase) {
		t.Errorf("the description does not say %s", phrase)
	}
	if op.Security == nil {
		t.Fatal("no security requirement")
	}
	// Each scope is one alternative requirement (OpenAPI ORs them), holding
	// exactly that scope; alternatives without a key (a signed URL) may be
	// added.
	var bearer []string
	for _, req := range *op.Security {
		if s, ok := req["apiKey"]; ok {
			if len(s) != 1 {
				t.Errorf("an apiKey security requirement with scopes %v, want exactly one", s)
				continue
			}
			bearer = append(bearer, s[0])
		}
	}
	slices.Sort(bearer)
	want := slices.Sorted(slices.Values(required))
	if !slices.Equal(bearer, want) {
		t.Errorf("apiKey security requirements name %v, want one for each of %v", bearer, want)
	}
}

func checkResponse(t *testing.T, status string, resp *openapi3.Response, v1 bool) {
	t.Helper()
	header := func(name string) *openapi3.Header {
		if h := resp.Headers[name]; h != nil {
			return h.Value
		}
		return nil
	}
	want := []string{"X-Request-ID"}
	if v1 {
		want = append(want, "RateLimit-Policy", "RateLimit")
	}
	if status == "429" || status == "503" {
		want = append(want, "Retry-After")
	}
	for _, name := range want {
		if h := header(name); h == nil || !h.Required {
			t.Errorf("%s: header %s is not documented as required", status, name)
		}
	}
	if !v1 && (header("RateLimit") != nil || header("RateLimit-Policy") != nil) {
		t.Errorf("%s: rate-limit headers outside /v1", status)
	}
	code, _ := strconv.Atoi(status)
	if code >= 400 && !(status == "503" && !v1) { // /readyz reports its checks instead
		keys := sortedKeys(resp.Content)
		if !slices.Equal(keys, []string{"application/problem+json"}) {
			t.Errorf("%s: error content is %v, want only application/problem+json", status, keys)
			return
		}
		if ref := resp.Content["application/problem+json"].Schema.Ref; ref != "./schemas/problem.json" {
			t.Errorf("%s: error schema is %q, want ./schemas/problem.json", status, ref)
		}
	}
}

func hasParam(op *openapi3.Operation, in, name string) bool {
	for _, p := range op.Parameters {
		if p.Value != nil && p.Value.In == in && p.Value.Name == name {
			return true
		}
	}
	return false
}

// The problem types in problem.json, the checker's table and the statuses the
// contract documents must be the same set.
func TestProblemTypesMatchStatuses(t *testing.T) {
	c := checker(t)
	s := readSchema(t, "problem.json")
	props := s["properties"].(map[string]any)
	var types []string
	for _, v := range props["type"].(map[string]any)["enum"].([]any) {
		types = append(types, v.(string))
	}
	var statuses []int
	for _, v := range props["status"].(map[string]any)["enum"].([]any) {
		statuses = append(statuses, int(v.(float64)))
	}
	var tableTypes []string
	var tableStatuses []int
	for status, typ := range problemTypes {
		tableTypes = append(tableTypes, typ)
		tableStatuses = append(tableStatuses, status)
	}
	slices.Sort(types)
	slices.Sort(tableTypes)
	slices.Sort(statuses)
	slices.Sort(tableStatuses)
	if !slices.Equal(types, tableTypes) {
		t.Errorf("problem.json types %v, checker table %v", types, tableTypes)
	}
	if !slices.Equal(statuses, tableStatuses) {
		t.Errorf("problem.json statuses %v, checker table %v", statuses, tableStatuses)
	}
	// A job's error speaks the same problem vocabulary.
	jobErr := readSchema(t, "job-error.json")["properties"].(map[string]any)
	var jobTypes []string
	for _, v := range jobErr["type"].(map[string]any)["enum"].([]any) {
		jobTypes = append(jobTypes, v.(string))
	}
	var jobStatuses []int
	for _, v := range jobErr["status"].(map[string]any)["enum"].([]any) {
		jobStatuses = append(jobStatuses, int(v.(float64)))
	}
	slices.Sort(jobTypes)
	slices.Sort(jobStatuses)
	if !slices.Equal(jobTypes, types) || !slices.Equal(jobStatuses, statuses) {
		t.Errorf("job-error.json types %v and statuses %v differ from problem.json's %v and %v", jobTypes, jobStatuses, types, statuses)
	}
	documented := map[int]bool{}
	for _, item := range c.doc.Paths.Map() {
		for _, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if code, _ := strconv.Atoi(status); code >= 400 {
					documented[code] = true
				}
			}
		}
	}
	for code := range documented {
		if _, ok := problemTypes[code]; !ok {
			t.Errorf("status %d is documented but has no problem type", code)
		}
	}
}

// The outbound webhooks (the deliveries to REST hook subscriptions) are one
// POST per event type, as schemas/event-type.json lists them: the event's
// schema as the body, the delivery headers, and what the receiver's answers
// mean (2xx delivered, 410 unsubscribed, anything else retried).
func TestOutboundWebhooks(t *testing.T) {
	c := checker(t)
	var types []string
	for _, v := range readSchema(t, "event-type.json")["enum"].([]any) {
		types = append(types, v.(string))
	}
	var names []string
	for name := range c.doc.Webhooks {
		names = append(names, name)
	}
	if !slices.Equal(slices.Sorted(slices.Values(names)), slices.Sorted(slices.Values(types))) {
		t.Fatalf("webhooks are %v, want one for each event type %v", names, types)
	}
	// The feed's union names every per-type schema.
	var union []string
	for _, v := range readSchema(t, "event.json")["oneOf"].([]any) {
		union = append(union, v.(map[string]any)["$ref"].(string))
	}
	for _, typ := range types {
		t.Run(typ, func(t *testing.T) {
			item := c.doc.Webhooks[typ]
			if ops := item.Operations(); len(ops) != 1 || item.Post == nil {
				t.Fatalf("operations %v, want only POST", slices.Collect(maps.Keys(ops)))
			}
			op := item.Post
			if op.OperationID == "" || op.Summary == "" || op.Description == "" {
				t.Error("wants an operationId, a summary and a description")
			}
			if !slices.Equal(op.Tags, []string{"events"}) {
				t.Errorf("tags are %v, want [events]", op.Tags)
			}
			if op.Security == nil || len(*op.Security) != 0 {
				t.Error("a delivery carries no API key: want security: []")
			}
			file := "event-" + strings.ReplaceAll(typ, ".", "-") + ".json"
			if !slices.Contains(union, file) {
				t.Errorf("event.json's oneOf does not name %s", file)
			}
			props := readSchema(t, file)["properties"].(map[string]any)
			if got := props["type"].(map[string]any)["const"]; got != typ {
				t.Errorf("%s: type is const %v, want %q", file, got, typ)
			}
			if op.RequestBody == nil || !op.RequestBody.Value.Required {
				t.Fatal("no required request body")
			}
			content := op.RequestBody.Value.Content
			if keys := sortedKeys(content); !slices.Equal(keys, []string{"application/json"}) {
				t.Errorf("body content is %v, want [application/json]", keys)
			} else if ref := content["application/json"].Schema.Ref; ref != "./schemas/"+file {
				t.Errorf("body schema is %q, want ./schemas/%s", ref, file)
			}
			for _, name := range []string{"Chatvault-Event-Id", "Chatvault-Event-Type", "Chatvault-Signature", "User-Agent"} {
				var p *openapi3.Parameter
				for _, ref := range op.Parameters {
					if ref.Value != nil && ref.Value.In == "header" && ref.Value.Name == name {
						p = ref.Value
					}
				}
				if p == nil || !p.Required {
					t.Errorf("header %s is not documented as required", name)
					continue
				}
				if name == "Chatvault-Event-Type" {
					if got := p.Schema.Value.Const; got != typ {
						t.Errorf("Chatvault-Event-Type is const %v, want %q", got, typ)
					}
				}
			}
			statuses := op.Responses.Map()
			for _, s := range []string{"2XX", "410", "default"} {
				if statuses[s] == nil {
					t.Errorf("does not document the receiver's %s answer", s)
				}
			}
			if len(statuses) != 3 {
				t.Errorf("answers %v, want exactly 2XX, 410 and default", slices.Sorted(maps.Keys(statuses)))
			}
		})
	}
}

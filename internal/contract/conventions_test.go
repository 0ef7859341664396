package contract

import (
	"encoding/json"
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

// The conventions of section 3 of the design, one operation at a time: scopes,
// request IDs, rate-limit headers, problem+json errors, idempotency keys.
func TestOperationConventions(t *testing.T) {
	c := checker(t)
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			t.Run(name, func(t *testing.T) {
				v1 := strings.HasPrefix(path, "/v1/")
				if op.OperationID == "" || op.Summary == "" || op.Description == "" {
					t.Error("wants an operationId, a summary and a description")
				}
				checkSecurity(t, op, v1)
				statuses := op.Responses.Map()
				if v1 {
					for _, s := range []string{"401", "403", "429", "500", "503"} {
						if statuses[s] == nil {
							t.Errorf("does not document %s", s)
						}
					}
				} else if statuses["500"] == nil {
					t.Error("does not document 500")
				}
				if op.RequestBody != nil {
					for _, s := range []string{"400", "413", "415"} {
						if statuses[s] == nil {
							t.Errorf("takes a body but does not document %s", s)
						}
					}
					if keys := sortedKeys(op.RequestBody.Value.Content); !slices.Equal(keys, []string{"application/json"}) {
						t.Errorf("request body content is %v, want only application/json", keys)
					}
				}
				if method == "POST" && !hasParam(op, "header", "Idempotency-Key") {
					t.Error("a POST without an Idempotency-Key parameter")
				}
				for status, ref := range statuses {
					checkResponse(t, status, ref.Value, v1)
				}
			})
		}
	}
}

func checkSecurity(t *testing.T, op *openapi3.Operation, v1 bool) {
	t.Helper()
	scope, _ := op.Extensions["x-required-scope"].(string)
	if !v1 {
		if scope != "" || op.Security == nil || len(*op.Security) != 0 {
			t.Error("a route outside /v1 must say security: [] and need no scope")
		}
		return
	}
	if !slices.Contains(scopes, scope) {
		t.Fatalf("x-required-scope is %q, want one of %v", scope, scopes)
	}
	if !strings.Contains(op.Description, "Scope: `"+scope+"`") {
		t.Errorf("the description does not say Scope: `%s`", scope)
	}
	if op.Security == nil {
		t.Fatal("no security requirement")
	}
	var bearer bool
	for _, req := range *op.Security {
		if scopes, ok := req["apiKey"]; ok {
			bearer = slices.Equal(scopes, []string{scope})
		}
	}
	if !bearer {
		t.Errorf("no apiKey security requirement with exactly [%s]", scope)
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

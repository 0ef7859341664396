// Package contract checks HTTP requests and responses against openapi.yaml,
// the API's contract, so that a test fails as soon as the server and the
// contract drift apart.
//
// kin-openapi finds the route and checks parameters, security, statuses and
// headers. Bodies are checked by a JSON Schema 2020-12 validator compiled from
// the contract's own files (openapi.yaml and schemas/*.json), so conditionals
// such as if/then are enforced exactly, never approximated.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// requestBody is the status slot under which a request body's schema is kept.
const requestBody = "request"

// Checker validates requests and responses against a loaded contract. It is
// safe for concurrent use.
type Checker struct {
	doc    *openapi3.T
	router routers.Router
	ops    []string
	// bodies holds the compiled JSON body schemas by operation ("GET /path"),
	// status ("200", or requestBody) and media type key as written in the
	// contract ("application/json").
	bodies map[bodyKey]*jsonschema.Schema
	// schemas holds each schemas/*.json file compiled on its own, by file name.
	schemas map[string]*jsonschema.Schema

	mu        sync.Mutex
	exercised map[string]bool
}

type bodyKey struct {
	op, status, mediaType string
}

// Load reads the contract at specPath (openapi.yaml, with the schemas/
// directory beside it), checks that it is a valid OpenAPI 3.1 document, and
// compiles every JSON body schema it names.
func Load(specPath string) (*Checker, error) {
	abs, err := filepath.Abs(specPath)
	if err != nil {
		return nil, fmt.Errorf("contract: %w", err)
	}

	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = true
	doc, err := loader.LoadFromFile(abs)
	if err != nil {
		return nil, fmt.Errorf("contract: load %s: %w", specPath, err)
	}
	if !doc.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("contract: %s is OpenAPI %s, want 3.1", specPath, doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("contract: %s is not a valid OpenAPI document: %w", specPath, err)
	}

	// Route on paths alone: tests reach the server at whatever host and port
	// httptest picked, never at the documented servers.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("contract: build router: %w", err)
	}

	c := &Checker{
		doc:       doc,
		router:    router,
		bodies:    make(map[bodyKey]*jsonschema.Schema),
		schemas:   make(map[string]*jsonschema.Schema),
		exercised: make(map[string]bool),
	}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			c.ops = append(c.ops, method+" "+path)
		}
	}
	sort.Strings(c.ops)

	if err := c.compileBodies(abs); err != nil {
		return nil, err
	}
	return c, nil
}

// DefaultSpecPath finds openapi.yaml at the root of the module that holds the
// working directory, as `go test` runs in a package's directory.
func DefaultSpecPath() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("contract: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			spec := filepath.Join(dir, "openapi.yaml")
			if _, err := os.Stat(spec); err != nil {
				return "", fmt.Errorf("contract: module root %s has no openapi.yaml", dir)
			}
			return spec, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("contract: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Operations lists every operation in the contract as "METHOD /path", sorted.
func (c *Checker) Operations() []string {
	return slices.Clone(c.ops)
}

// Exercised lists, sorted, the operations for which CheckResponse has passed
// at least once, so that a test can assert it covered the whole contract.
func (c *Checker) Exercised() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Sorted(maps.Keys(c.exercised))
}

// Operation names the contract operation ("METHOD /path") that req is routed
// to, or fails when the contract has no such route.
func (c *Checker) Operation(req *http.Request) (string, error) {
	route, _, err := c.findRoute(req)
	if err != nil {
		return "", err
	}
	return route.Method + " " + route.Path, nil
}

// CheckRequest validates req, whose body is body (req.Body is not read),
// against its operation: path, query and header parameters, the presence of
// credentials that satisfy one of its security requirements, and the body.
func (c *Checker) CheckRequest(req *http.Request, body []byte) error {
	route, params, err := c.findRoute(req)
	if err != nil {
		return err
	}
	op := route.Method + " " + route.Path
	fail := func(err error) error { return fmt.Errorf("contract: request %s: %w", op, err) }

	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(body))
	opts := &openapi3filter.Options{
		ExcludeRequestBody: true, // checked below, by the 2020-12 validator
		MultiError:         true,
		AuthenticationFunc: presentCredentials,
	}
	opts.WithCustomSchemaErrorFunc(schemaErrorMessage)
	input := &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: params,
		Route:      route,
		Options:    opts,
	}
	if err := openapi3filter.ValidateRequest(r.Context(), input); err != nil {
		return fail(err)
	}

	rb := route.Operation.RequestBody
	if rb == nil || rb.Value == nil {
		if len(body) > 0 {
			return fail(fmt.Errorf("has a %d-byte body but the operation takes none", len(body)))
		}
		return nil
	}
	if len(body) == 0 {
		if rb.Value.Required {
			return fail(errors.New("body is required"))
		}
		return nil
	}
	ct := req.Header.Get("Content-Type")
	key, _ := contentKey(rb.Value.Content, ct)
	if key == "" {
		return fail(fmt.Errorf("Content-Type %q is not one of %v", ct, sortedKeys(rb.Value.Content)))
	}
	if err := c.checkBody(bodyKey{op, requestBody, key}, body); err != nil {
		return fail(err)
	}
	return nil
}

// CheckResponse validates a response to req: the status must be documented
// for the route, the documented headers present and well-formed, and the body
// valid for its Content-Type. JSON bodies are validated against their schema;
// binary and text bodies only need a documented Content-Type. Problem bodies
// must also agree with the response: status, instance (the request path),
// request_id (the X-Request-ID header) and type (the status's kind).
func (c *Checker) CheckResponse(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := c.findRoute(req)
	if err != nil {
		return err
	}
	op := route.Method + " " + route.Path
	fail := func(err error) error { return fmt.Errorf("contract: response %s → %d: %w", op, status, err) }

	ref := route.Operation.Responses.Status(status)
	if ref == nil || ref.Value == nil {
		return fail(fmt.Errorf("status %d is not documented (documented: %s)",
			status, strings.Join(documentedStatuses(route.Operation), ", ")))
	}
	resp := ref.Value

	opts := &openapi3filter.Options{
		ExcludeResponseBody:   true, // checked below, by the 2020-12 validator
		IncludeResponseStatus: true,
		MultiError:            true,
	}
	opts.WithCustomSchemaErrorFunc(schemaErrorMessage)
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
		},
		Status:  status,
		Header:  header,
		Body:    io.NopCloser(bytes.NewReader(nil)),
		Options: opts,
	}
	if err := openapi3filter.ValidateResponse(req.Context(), input); err != nil {
		return fail(err)
	}

	if len(resp.Content) == 0 {
		if len(body) > 0 {
			return fail(fmt.Errorf("has a %d-byte body but the contract documents none", len(body)))
		}
		c.markExercised(op)
		return nil
	}
	if req.Method == http.MethodHead {
		c.markExercised(op)
		return nil
	}
	ct := header.Get("Content-Type")
	if ct == "" {
		return fail(fmt.Errorf("no Content-Type (documented: %v)", sortedKeys(resp.Content)))
	}
	key, mediaType := contentKey(resp.Content, ct)
	if key == "" {
		return fail(fmt.Errorf("Content-Type %q is not documented (documented: %v)", ct, sortedKeys(resp.Content)))
	}
	if isJSON(mediaType) {
		if err := c.checkBody(bodyKey{op, strconv.Itoa(status), key}, body); err != nil {
			return fail(err)
		}
		if mediaType == "application/problem+json" {
			if err := checkProblem(req, status, header, body); err != nil {
				return fail(err)
			}
		}
	}
	if status == http.StatusCreated && isJSON(mediaType) {
		if err := checkLocation(req.URL.Path, header, body); err != nil {
			return fail(err)
		}
	}
	c.markExercised(op)
	return nil
}

// CheckSchema validates a JSON document against one schemas/*.json file, for
// bodies that travel outside HTTP responses (stored answers, events).
func (c *Checker) CheckSchema(file string, doc []byte) error {
	sch, ok := c.schemas[file]
	if !ok {
		return fmt.Errorf("contract: no schema %q (have: %v)", file, slices.Sorted(maps.Keys(c.schemas)))
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("contract: %s: not JSON: %w", file, err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("contract: %w", err)
	}
	return nil
}

func (c *Checker) markExercised(op string) {
	c.mu.Lock()
	c.exercised[op] = true
	c.mu.Unlock()
}

func (c *Checker) findRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return nil, nil, fmt.Errorf("contract: %s %s is not in the contract: %w", req.Method, req.URL.Path, err)
	}
	// The router matches the escaped path and hands back escaped values; the
	// contract describes the values (clients escape ":" and "+" in IDs).
	for k, v := range params {
		if u, err := url.PathUnescape(v); err == nil {
			params[k] = u
		}
	}
	return route, params, nil
}

func (c *Checker) checkBody(key bodyKey, body []byte) error {
	sch, ok := c.bodies[key]
	if !ok {
		// Documented without a schema: any JSON will do.
		if !json.Valid(body) {
			return errors.New("body is not valid JSON")
		}
		return nil
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("body is not valid JSON: %w", err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("body breaks the schema: %w", err)
	}
	return nil
}

// compileBodies compiles, with a JSON Schema 2020-12 compiler, the schema of
// every JSON request and response body in the contract. The compiler sees
// the contract's files as they are written: relative $refs resolve against
// the file that holds them, and no other URL can be loaded.
func (c *Checker) compileBodies(specAbs string) error {
	raw, err := os.ReadFile(specAbs)
	if err != nil {
		return fmt.Errorf("contract: %w", err)
	}
	spec, err := yamlToJSONValue(raw)
	if err != nil {
		return fmt.Errorf("contract: %s: %w", specAbs, err)
	}

	compiler := jsonschema.NewCompiler()
	compiler.DefaultDraft(jsonschema.Draft2020)
	compiler.AssertFormat()
	specURL := fileURL(specAbs)
	if err := compiler.AddResource(specURL, spec); err != nil {
		return fmt.Errorf("contract: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(filepath.Dir(specAbs), "schemas", "*.json"))
	if err != nil {
		return fmt.Errorf("contract: %w", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("contract: %w", err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("contract: %s: %w", f, err)
		}
		if err := compiler.AddResource(fileURL(f), doc); err != nil {
			return fmt.Errorf("contract: %s: %w", f, err)
		}
	}
	for _, f := range files {
		sch, err := compiler.Compile(fileURL(f))
		if err != nil {
			return fmt.Errorf("contract: compile %s: %w", filepath.Base(f), err)
		}
		c.schemas[filepath.Base(f)] = sch
	}

	root, _ := spec.(map[string]any)
	paths, _ := root["paths"].(map[string]any)
	for path, v := range paths {
		item, _ := v.(map[string]any)
		for method, v := range item {
			opObj, ok := v.(map[string]any)
			if !ok || !isMethod(method) {
				continue
			}
			op := strings.ToUpper(method) + " " + path
			opPtr := "/paths/" + escapePtr(path) + "/" + method

			if rb, ptr := resolveRef(root, opObj["requestBody"], opPtr+"/requestBody"); rb != nil {
				if err := c.compileContent(compiler, specURL, root, rb, ptr, op, requestBody); err != nil {
					return err
				}
			}
			responses, _ := opObj["responses"].(map[string]any)
			for status, v := range responses {
				resp, ptr := resolveRef(root, v, opPtr+"/responses/"+escapePtr(status))
				if resp == nil {
					return fmt.Errorf("contract: %s response %s: unresolvable", op, status)
				}
				if err := c.compileContent(compiler, specURL, root, resp, ptr, op, status); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (c *Checker) compileContent(compiler *jsonschema.Compiler, specURL string, root, obj map[string]any, ptr, op, status string) error {
	content, _ := obj["content"].(map[string]any)
	for mediaType, v := range content {
		mt, _ := v.(map[string]any)
		if _, ok := mt["schema"]; !ok || !isJSON(baseMediaType(mediaType)) {
			continue
		}
		loc := specURL + "#" + ptr + "/content/" + escapePtr(mediaType) + "/schema"
		sch, err := compiler.Compile(loc)
		if err != nil {
			return fmt.Errorf("contract: compile %s %s %s schema: %w", op, status, mediaType, err)
		}
		c.bodies[bodyKey{op, status, mediaType}] = sch
	}
	return nil
}

// resolveRef follows an internal $ref ("#/components/...") of an OpenAPI
// object, returning the object and its JSON Pointer in the document.
func resolveRef(root map[string]any, v any, ptr string) (map[string]any, string) {
	for range 10 { // a chain of refs is short; a cycle is a broken contract
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, ""
		}
		ref, ok := obj["$ref"].(string)
		if !ok {
			return obj, ptr
		}
		target, found := strings.CutPrefix(ref, "#")
		if !found {
			return nil, ""
		}
		ptr = target
		v = lookupPtr(root, target)
	}
	return nil, ""
}

func lookupPtr(root any, ptr string) any {
	cur := root
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[tok]
	}
	return cur
}

// schemaErrorMessage keeps kin-openapi's parameter and header errors to the
// reason and the value, without a dump of the whole schema.
func schemaErrorMessage(err *openapi3.SchemaError) string {
	return fmt.Sprintf("%s (value %s)", err.Reason, mustMarshal(err.Value))
}

func mustMarshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// presentCredentials accepts a security scheme when the request carries its
// credential in the documented place; whether the credential is valid is the
// server's business, not the contract's.
func presentCredentials(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	req := in.RequestValidationInput.Request
	s := in.SecurityScheme
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		scheme, token, _ := strings.Cut(req.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return errors.New("no Authorization: Bearer credential")
		}
	case s.Type == "apiKey" && s.In == "query":
		if req.URL.Query().Get(s.Name) == "" {
			return fmt.Errorf("no %q query parameter", s.Name)
		}
	case s.Type == "apiKey" && s.In == "header":
		if req.Header.Get(s.Name) == "" {
			return fmt.Errorf("no %q header", s.Name)
		}
	default:
		return fmt.Errorf("security scheme %q of type %q is not supported by the checker", in.SecuritySchemeName, s.Type)
	}
	return nil
}

// problemTypes maps each error status to its problem type, as problem.json
// documents them.
var problemTypes = map[int]string{
	400: "urn:chatvault:problem:invalid",
	401: "urn:chatvault:problem:unauthorized",
	403: "urn:chatvault:problem:forbidden",
	404: "urn:chatvault:problem:not_found",
	409: "urn:chatvault:problem:conflict",
	410: "urn:chatvault:problem:gone",
	413: "urn:chatvault:problem:too_large",
	415: "urn:chatvault:problem:unsupported_media",
	416: "urn:chatvault:problem:range_not_satisfiable",
	422: "urn:chatvault:problem:unprocessable",
	429: "urn:chatvault:problem:rate_limited",
	500: "urn:chatvault:problem:internal",
	502: "urn:chatvault:problem:bad_gateway",
	503: "urn:chatvault:problem:unavailable",
}

func checkProblem(req *http.Request, status int, header http.Header, body []byte) error {
	var p struct {
		Type      string `json:"type"`
		Status    int    `json:"status"`
		Instance  string `json:"instance"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Errorf("problem: %w", err)
	}
	var errs []error
	if p.Status != status {
		errs = append(errs, fmt.Errorf("problem status is %d, the response's is %d", p.Status, status))
	}
	if want := problemTypes[status]; p.Type != want {
		errs = append(errs, fmt.Errorf("problem type is %q, want %q for %d", p.Type, want, status))
	}
	if p.Instance != req.URL.Path {
		errs = append(errs, fmt.Errorf("problem instance is %q, want the request path %q", p.Instance, req.URL.Path))
	}
	if id := header.Get("X-Request-ID"); p.RequestID != id {
		errs = append(errs, fmt.Errorf("problem request_id is %q, X-Request-ID is %q", p.RequestID, id))
	}
	return errors.Join(errs...)
}

func checkLocation(path string, header http.Header, body []byte) error {
	var m struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &m); err != nil || m.ID == "" {
		return nil // the schema check already said what is wrong
	}
	// A created resource lives under the collection it was posted to.
	if loc, want := header.Get("Location"), strings.TrimRight(path, "/")+"/"+m.ID; loc != want {
		return fmt.Errorf("Location is %q, want %q (the created record)", loc, want)
	}
	return nil
}

// contentKey finds the contract's content entry for a Content-Type, with the
// same precedence as OpenAPI (exact, then type/*, then */*), returning its key
// as written in the contract and the response's bare media type.
func contentKey(content openapi3.Content, contentType string) (key, mediaType string) {
	mediaType = baseMediaType(contentType)
	if mediaType == "" {
		return "", ""
	}
	mt := content.Get(contentType)
	if mt == nil {
		return "", mediaType
	}
	for k, v := range content {
		if v == mt {
			return k, mediaType
		}
	}
	return "", mediaType
}

func baseMediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	return mt
}

func isJSON(mediaType string) bool {
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

func isMethod(s string) bool {
	switch strings.ToUpper(s) {
	case http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete,
		http.MethodOptions, http.MethodHead, http.MethodPatch, http.MethodTrace:
		return true
	}
	return false
}

func documentedStatuses(op *openapi3.Operation) []string {
	return slices.Sorted(maps.Keys(op.Responses.Map()))
}

func sortedKeys(content openapi3.Content) []string {
	return slices.Sorted(maps.Keys(content))
}

func escapePtr(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func fileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// yamlToJSONValue decodes YAML into the values encoding/json would produce
// (json.Number for numbers), as the JSON Schema compiler expects.
func yamlToJSONValue(b []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	v, err := stringKeys(v)
	if err != nil {
		return nil, err
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(j))
}

func stringKeys(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			e, err := stringKeys(e)
			if err != nil {
				return nil, err
			}
			v[k] = e
		}
		return v, nil
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			e, err := stringKeys(e)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = e
		}
		return m, nil
	case []any:
		for i, e := range v {
			e, err := stringKeys(e)
			if err != nil {
				return nil, err
			}
			v[i] = e
		}
		return v, nil
	}
	return v, nil
}

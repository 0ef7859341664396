package make_test

// The contract test: every request the app makes is checked against
// openapi.yaml (and the JSON Schemas in schemas/ it refers to). A module that
// calls a route, sends a query parameter, header or body field the contract
// does not have, sends it with another type, offers select options the
// contract's enum refuses, or leaves out something the contract requires,
// fails here with a message naming the module and the field.

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

const specPath = "../../openapi.yaml"

var (
	specOnce sync.Once
	specDoc  *openapi3.T
	specErr  error
)

func loadSpec(t testing.TB) *openapi3.T {
	t.Helper()
	specOnce.Do(func() {
		abs, err := filepath.Abs(specPath)
		if err != nil {
			specErr = err
			return
		}
		loader := openapi3.NewLoader()
		loader.IsExternalRefsAllowed = true
		loader.Context = context.Background()
		specDoc, specErr = loader.LoadFromFile(abs)
	})
	if specErr != nil {
		t.Fatalf("loading %s: %v", specPath, specErr)
	}
	return specDoc
}

// call is one HTTP request an app component makes.
type call struct {
	Where    string // "module archiveMedia", "webhook newMedia attach", ...
	Comp     *component
	Spec     map[string]any
	Params   map[string]paramDef
	UsesBase bool           // modules, RPCs and webhooks inherit the Base
	ConnVars map[string]any // names of the connection's parameters ({{connection.x}})
	HookVars map[string]any // {{webhook.x}}: url and what attach stores
}

// allCalls lists every request of the app: the connection test, module and
// RPC communications, and webhook attach and detach.
func allCalls(a *appDef) []call {
	var calls []call
	connVars := func(name string) map[string]any {
		conn := a.Components["connection"][name]
		vars := map[string]any{}
		if conn != nil {
			for n := range conn.params("params") {
				vars[n] = true
			}
		}
		return vars
	}
	for _, name := range sortedKeys(a.Components["connection"]) {
		c := a.Components["connection"][name]
		calls = append(calls, call{Where: "connection " + name, Comp: c, Spec: c.request("communication"),
			Params: c.params("params")})
	}
	for _, name := range sortedKeys(a.Components["module"]) {
		c := a.Components["module"][name]
		spec := c.request("communication")
		if len(spec) == 0 {
			continue // an instant trigger needs no request of its own
		}
		calls = append(calls, call{Where: "module " + name, Comp: c, Spec: spec,
			Params: c.params("staticParams", "mappableParams"), UsesBase: true, ConnVars: connVars(str(c.Meta["connection"]))})
	}
	for _, name := range sortedKeys(a.Components["rpc"]) {
		c := a.Components["rpc"][name]
		calls = append(calls, call{Where: "rpc " + name, Comp: c, Spec: c.request("communication"),
			Params: c.params("params"), UsesBase: true, ConnVars: connVars(str(c.Meta["connection"]))})
	}
	for _, name := range sortedKeys(a.Components["webhook"]) {
		c := a.Components["webhook"][name]
		hookVars := map[string]any{"url": true}
		if data, ok := c.request("attach")["response"].(map[string]any)["data"].(map[string]any); ok {
			for k := range data {
				hookVars[k] = true
			}
		}
		for _, ct := range []string{"attach", "detach"} {
			if spec := c.request(ct); spec != nil {
				calls = append(calls, call{Where: "webhook " + name + " " + ct, Comp: c, Spec: spec,
					Params: c.params("params"), UsesBase: true, ConnVars: connVars(str(c.Meta["connection"])), HookVars: hookVars})
			}
		}
	}
	return calls
}

// checkApp returns every disagreement between the app's requests and the
// contract.
func checkApp(doc *openapi3.T, a *appDef) []string {
	var problems []string
	for _, c := range allCalls(a) {
		for _, p := range checkCall(doc, a.Base, c) {
			problems = append(problems, c.Where+": "+p)
		}
	}
	return problems
}

func TestContract(t *testing.T) {
	doc := loadSpec(t)
	a := loadApp(t)
	calls := allCalls(a)
	if len(calls) < 7 {
		t.Fatalf("found %d requests in the app, want at least 7 (connection, 3 modules, rpc, attach, detach)", len(calls))
	}
	for _, c := range calls {
		t.Run(strings.ReplaceAll(c.Where, " ", "_"), func(t *testing.T) {
			for _, p := range checkCall(doc, a.Base, c) {
				t.Errorf("%s: %s", c.Where, p)
			}
		})
	}
}

// TestContractCatchesDrift breaks copies of the app on purpose and expects
// the contract check to say so: proof that TestContract can fail.
func TestContractCatchesDrift(t *testing.T) {
	doc := loadSpec(t)
	good := loadApp(t)
	for _, tc := range []struct {
		name   string
		break_ func(a *appDef)
		want   string
	}{
		{"unknown route", func(a *appDef) {
			a.get("module", "tagMedia").request("communication")["url"] = "/v1/media/{{parameters.mediaId}}/labels"
		}, "no path of openapi.yaml"},
		{"wrong method", func(a *appDef) {
			a.get("module", "tagMedia").request("communication")["method"] = "PUT"
		}, "has no PUT"},
		{"unknown query parameter", func(a *appDef) {
			a.get("module", "listCustomerMedia").request("communication")["qs"].(map[string]any)["colour"] = "{{parameters.kind}}"
		}, `query parameter "colour"`},
		{"unknown body field", func(a *appDef) {
			a.get("module", "archiveMedia").request("communication")["body"].(map[string]any)["priority"] = "{{parameters.caption}}"
		}, `body field "priority"`},
		{"unknown nested body field", func(a *appDef) {
			body := a.get("module", "archiveMedia").request("communication")["body"].(map[string]any)
			body["message"].(map[string]any)["sender"] = "{{parameters.messageFrom}}"
		}, `body field "message.sender"`},
		{"missing required body field", func(a *appDef) {
			delete(a.get("module", "archiveMedia").request("communication")["body"].(map[string]any), "customer_id")
		}, `required body field "customer_id"`},
		{"required field fed by an optional parameter", func(a *appDef) {
			setParam(a.get("module", "archiveMedia"), "mappableParams", "customerId", "required", false)
		}, "optional parameter customerId"},
		{"type mismatch in the query", func(a *appDef) {
			setParam(a.get("module", "listCustomerMedia"), "mappableParams", "pageSize", "type", "text")
		}, "is text (string) but the contract wants integer"},
		{"type mismatch in the body", func(a *appDef) {
			setParam(a.get("module", "archiveMedia"), "mappableParams", "caption", "type", "number")
		}, "is number (number) but the contract wants string"},
		{"array sent as text", func(a *appDef) {
			setParam(a.get("module", "tagMedia"), "mappableParams", "add", "multiple", false)
		}, "is select (string) but the contract wants array"},
		{"select option outside the enum", func(a *appDef) {
			p := findParam(a.get("module", "listCustomerMedia"), "mappableParams", "kind")
			p["options"] = append(p["options"].([]any), map[string]any{"label": "GIF", "value": "gif"})
		}, `option "gif"`},
		{"page size above the contract's maximum", func(a *appDef) {
			findParam(a.get("module", "listCustomerMedia"), "mappableParams", "pageSize")["validate"] = map[string]any{"min": 1.0, "max": 500.0}
		}, "above the contract's maximum 200"},
		{"undefined parameter", func(a *appDef) {
			a.get("module", "tagMedia").request("communication")["body"].(map[string]any)["add"] = "{{parameters.addTags}}"
		}, "parameters.addTags"},
		{"unknown header", func(a *appDef) {
			a.get("module", "tagMedia").request("communication")["headers"] = map[string]any{"X-Priority": "high"}
		}, `header "X-Priority"`},
		{"response mapping reads a field the answer lacks", func(a *appDef) {
			a.get("module", "listCustomerMedia").request("communication")["pagination"].(map[string]any)["condition"] = "{{body.nextCursor}}"
		}, "body.nextCursor"},
		{"detach loses the hook ID", func(a *appDef) {
			a.get("webhook", "newMedia").request("detach")["url"] = "/v1/hooks/{{webhook.hookId}}"
		}, "neither Make nor the attach response.data provides"},
		{"webhook subscribes to an event the contract does not have", func(a *appDef) {
			a.get("webhook", "newMedia").request("attach")["body"].(map[string]any)["events"] = []any{"media.created"}
		}, `"media.created"`},
		{"webhook filter option outside the enum", func(a *appDef) {
			p := findParam(a.get("webhook", "newMedia"), "params", "kind")
			p["options"] = append(p["options"].([]any), map[string]any{"label": "Voice", "value": "voice"})
		}, `option "voice"`},
		{"connection test on a missing route", func(a *appDef) {
			a.get("connection", "chatvault").request("communication")["url"] = "{{parameters.baseUrl}}/v1/whoami"
		}, "/v1/whoami matches no path of openapi.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := good.clone()
			tc.break_(bad)
			problems := checkApp(doc, bad)
			for _, p := range problems {
				if strings.Contains(p, tc.want) {
					return
				}
			}
			t.Errorf("breaking the app (%s) went unnoticed: want a problem containing %q, got %q", tc.name, tc.want, problems)
		})
	}
}

func findParam(c *component, codeType, name string) map[string]any {
	list, _ := c.Files[codeType].([]any)
	for _, raw := range list {
		if m, ok := raw.(map[string]any); ok && m["name"] == name {
			return m
		}
	}
	panic(fmt.Sprintf("%s %s has no parameter %s in %s", c.Kind, c.Name, name, codeType))
}

func setParam(c *component, codeType, name, key string, v any) {
	findParam(c, codeType, name)[key] = v
}

// checkCall checks one request against the contract.
func checkCall(doc *openapi3.T, base map[string]any, c call) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	method := strings.ToUpper(str(c.Spec["method"]))
	if method == "" {
		method = "GET"
	}
	rawURL := str(c.Spec["url"])
	path, pathExprs, err := requestPath(rawURL, c.UsesBase)
	if err != nil {
		return []string{err.Error()}
	}
	specPath, item, names := matchPath(doc, path)
	if item == nil {
		return []string{fmt.Sprintf("%s %s matches no path of openapi.yaml", method, rawURL)}
	}
	op := item.GetOperation(method)
	if op == nil {
		return []string{fmt.Sprintf("openapi.yaml has no %s %s (the path exists, the method does not)", method, specPath)}
	}
	opName := method + " " + specPath
	params := append(openapi3.Parameters{}, item.Parameters...)
	params = append(params, op.Parameters...)
	param := func(in, name string) *openapi3.Parameter {
		for _, p := range params {
			if p.Value != nil && p.Value.In == in && strings.EqualFold(p.Value.Name, name) {
				return p.Value
			}
		}
		return nil
	}

	// Path parameters: each {name} of the contract's path is filled by an
	// expression of the right type.
	for _, name := range sortedKeys(names) {
		expr := pathExprs[names[name]]
		p := param("path", name)
		if p == nil {
			add("%s: path parameter {%s} is not declared", opName, name)
			continue
		}
		problems = append(problems, checkValue(c, "path parameter {"+name+"}", "{{"+expr+"}}", schemaOf(p.Schema))...)
	}

	// Query parameters of the request and of its pagination.
	qs := map[string]any{}
	for k, v := range asMap(c.Spec["qs"]) {
		qs[k] = v
	}
	for k, v := range asMap(asMap(c.Spec["pagination"])["qs"]) {
		qs[k] = v
	}
	for _, k := range sortedKeys(qs) {
		p := param("query", k)
		if p == nil {
			add("%s has no query parameter %q", opName, k)
			continue
		}
		problems = append(problems, checkValue(c, fmt.Sprintf("query parameter %q", k), qs[k], schemaOf(p.Schema))...)
	}

	// Headers, the Base's included.
	headers := map[string]any{}
	if c.UsesBase {
		for k, v := range asMap(base["headers"]) {
			headers[k] = v
		}
	}
	for k, v := range asMap(c.Spec["headers"]) {
		headers[k] = v
	}
	auth := ""
	for _, k := range sortedKeys(headers) {
		switch strings.ToLower(k) {
		case "authorization":
			auth = str(headers[k])
			continue
		case "accept", "content-type":
			continue
		}
		p := param("header", k)
		if p == nil {
			add("%s has no header %q", opName, k)
			continue
		}
		problems = append(problems, checkValue(c, fmt.Sprintf("header %q", k), headers[k], schemaOf(p.Schema))...)
	}
	if needsKey(doc, op) && !strings.HasPrefix(auth, "Bearer {{") {
		add("%s needs an API key, but the request sends no Authorization: Bearer header", opName)
	}

	// Required parameters the request leaves out.
	for _, p := range params {
		if p.Value == nil || !p.Value.Required || p.Value.In == "path" {
			continue
		}
		var sent map[string]any
		switch p.Value.In {
		case "query":
			sent = qs
		case "header":
			sent = headers
		default:
			continue
		}
		found := false
		for k := range sent {
			if strings.EqualFold(k, p.Value.Name) {
				found = true
			}
		}
		if !found {
			add("%s requires %s parameter %q, which the request does not send", opName, p.Value.In, p.Value.Name)
		}
	}

	// The body.
	body, hasBody := c.Spec["body"]
	var reqSchema *openapi3.Schema
	if op.RequestBody != nil && op.RequestBody.Value != nil {
		if mt := op.RequestBody.Value.Content.Get("application/json"); mt != nil {
			reqSchema = schemaOf(mt.Schema)
		}
	}
	switch {
	case hasBody && reqSchema == nil:
		add("%s takes no JSON body, but the request sends one", opName)
	case !hasBody && op.RequestBody != nil && op.RequestBody.Value != nil && op.RequestBody.Value.Required:
		add("%s requires a body, but the request sends none", opName)
	case hasBody:
		problems = append(problems, checkValue(c, "body", body, reqSchema)...)
	}

	// What the response mapping reads must be in the answer.
	problems = append(problems, checkResponseRefs(c, op, opName)...)
	return problems
}

// requestPath turns a request URL into a path whose {{...}} segments are
// named {$1}, {$2}, ... and returns the expression of each; a base URL
// expression at the start is dropped.
func requestPath(rawURL string, usesBase bool) (string, map[string]string, error) {
	u := rawURL
	if strings.HasPrefix(u, "{{") {
		end := strings.Index(u, "}}")
		if end < 0 {
			return "", nil, fmt.Errorf("url %q: unclosed {{", rawURL)
		}
		root := u[2:end]
		if root != "connection.baseUrl" && root != "parameters.baseUrl" {
			return "", nil, fmt.Errorf("url %q must start with the base URL or a path", rawURL)
		}
		u = u[end+2:]
	} else if !usesBase || !strings.HasPrefix(u, "/") {
		return "", nil, fmt.Errorf("url %q must be a path under the connection's base URL", rawURL)
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return "", nil, fmt.Errorf("url %q: put query parameters in qs, not in the url", rawURL)
	}
	segs := strings.Split(u, "/")
	exprs := map[string]string{}
	for i, s := range segs {
		if !strings.Contains(s, "{{") {
			continue
		}
		if !strings.HasPrefix(s, "{{") || !strings.HasSuffix(s, "}}") || strings.Count(s, "{{") != 1 {
			return "", nil, fmt.Errorf("url %q: a {{...}} must fill a whole path segment", rawURL)
		}
		key := fmt.Sprintf("$%d", i)
		exprs[key] = s[2 : len(s)-2]
		segs[i] = "{" + key + "}"
	}
	return strings.Join(segs, "/"), exprs, nil
}

// matchPath finds the contract's path for a request path from requestPath,
// and maps each of the contract's path parameter names to the key of the
// expression that fills it.
func matchPath(doc *openapi3.T, path string) (string, *openapi3.PathItem, map[string]string) {
	segs := strings.Split(path, "/")
	for _, p := range doc.Paths.InMatchingOrder() {
		ps := strings.Split(p, "/")
		if len(ps) != len(segs) {
			continue
		}
		names := map[string]string{}
		ok := true
		for i := range ps {
			isParam := strings.HasPrefix(ps[i], "{")
			isExpr := strings.HasPrefix(segs[i], "{$")
			if isParam != isExpr || !isParam && ps[i] != segs[i] {
				ok = false
				break
			}
			if isParam {
				names[strings.Trim(ps[i], "{}")] = strings.Trim(segs[i], "{}")
			}
		}
		if ok {
			return p, doc.Paths.Value(p), names
		}
	}
	return "", nil, nil
}

func needsKey(doc *openapi3.T, op *openapi3.Operation) bool {
	sec := doc.Security
	if op.Security != nil {
		sec = *op.Security
	}
	for _, req := range sec {
		if _, ok := req["apiKey"]; ok {
			return true
		}
	}
	return false
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func schemaOf(ref *openapi3.SchemaRef) *openapi3.Schema {
	if ref == nil {
		return nil
	}
	return ref.Value
}

// schemaTypes lists the JSON types a schema allows, looking through allOf
// (any member that names types) and anyOf/oneOf (the union of the
// alternatives); nil means any.
func schemaTypes(s *openapi3.Schema) []string {
	if s == nil {
		return nil
	}
	if ts := s.Type.Slice(); len(ts) > 0 {
		return ts
	}
	for _, sub := range s.AllOf {
		if ts := schemaTypes(schemaOf(sub)); len(ts) > 0 {
			return ts
		}
	}
	if alts := append(append(openapi3.SchemaRefs{}, s.AnyOf...), s.OneOf...); len(alts) > 0 {
		var union []string
		for _, alt := range alts {
			as := schemaOf(alt)
			ts := schemaTypes(as)
			if len(ts) == 0 && as != nil && as.Const != nil {
				ts = []string{jsonTypeOf(as.Const)}
			}
			if len(ts) == 0 {
				return nil // one alternative takes anything
			}
			for _, t := range ts {
				if !slices.Contains(union, t) {
					union = append(union, t)
				}
			}
		}
		return union
	}
	return nil
}

func jsonTypeOf(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64, int, int64:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "null"
}

// schemaEnum lists the values a schema allows (enum or const, through allOf,
// and the union over anyOf/oneOf); nil means it lists none.
func schemaEnum(s *openapi3.Schema) []any {
	if s == nil {
		return nil
	}
	if len(s.Enum) > 0 {
		return s.Enum
	}
	if s.Const != nil {
		return []any{s.Const}
	}
	for _, sub := range s.AllOf {
		if e := schemaEnum(schemaOf(sub)); len(e) > 0 {
			return e
		}
	}
	if alts := append(append(openapi3.SchemaRefs{}, s.AnyOf...), s.OneOf...); len(alts) > 0 {
		var union []any
		for _, alt := range alts {
			e := schemaEnum(schemaOf(alt))
			if len(e) == 0 {
				return nil // one alternative is not a list of values
			}
			union = append(union, e...)
		}
		return union
	}
	return nil
}

// property finds a property of an object schema, looking through allOf.
func property(s *openapi3.Schema, name string) *openapi3.Schema {
	if s == nil {
		return nil
	}
	if p, ok := s.Properties[name]; ok {
		return schemaOf(p)
	}
	for _, sub := range s.AllOf {
		if p := property(schemaOf(sub), name); p != nil {
			return p
		}
	}
	return nil
}

func compatible(makeType string, allowed []string) bool {
	if makeType == "any" || len(allowed) == 0 {
		return true
	}
	if slices.Contains(allowed, makeType) {
		return true
	}
	return makeType == "integer" && slices.Contains(allowed, "number")
}

// makeType maps a Make parameter type to the JSON type Make sends.
func makeType(p paramDef) string {
	switch p.Type {
	case "text", "password", "email", "url", "date", "time", "timezone", "uuid", "color", "filename", "path", "hidden":
		return "string"
	case "number":
		return "number"
	case "integer", "uinteger", "port":
		return "integer"
	case "boolean":
		return "boolean"
	case "select":
		if p.Multiple {
			return "array"
		}
		return "string"
	case "array":
		return "array"
	case "collection":
		return "object"
	}
	return "any"
}

// exprType works out the JSON type of an IML expression, and the parameter
// it reads when it is a plain {{parameters.x}}.
func exprType(c call, n node) (string, *paramDef, error) {
	switch n := n.(type) {
	case litNode:
		switch v := n.v.(type) {
		case string:
			return "string", nil, nil
		case float64:
			if v == float64(int64(v)) {
				return "integer", nil, nil
			}
			return "number", nil, nil
		case bool:
			return "boolean", nil, nil
		}
		return "null", nil, nil
	case pathNode:
		first := ""
		if len(n.steps) > 0 {
			first, _ = n.steps[0].(string)
		}
		switch n.root {
		case "parameters":
			p, ok := c.Params[first]
			if !ok {
				return "", nil, fmt.Errorf("reads parameters.%s, which the component does not define", first)
			}
			if len(n.steps) > 1 {
				return "any", nil, nil
			}
			return makeType(p), &p, nil
		case "connection":
			if _, ok := c.ConnVars[first]; !ok {
				return "", nil, fmt.Errorf("reads connection.%s, which the connection does not define", first)
			}
			return "string", nil, nil
		case "webhook":
			if _, ok := c.HookVars[first]; !ok {
				return "", nil, fmt.Errorf("reads webhook.%s, which neither Make nor the attach response.data provides", first)
			}
			return "string", nil, nil
		case "body", "item", "headers", "temp", "data":
			return "any", nil, nil
		case "statusCode":
			return "integer", nil, nil
		}
		return "", nil, fmt.Errorf("reads %s, an IML variable the tests do not know", n.root)
	case binNode:
		if n.op != "+" && n.op != "-" {
			return "boolean", nil, nil
		}
		lt, _, err := exprType(c, n.l)
		if err != nil {
			return "", nil, err
		}
		rt, _, err := exprType(c, n.r)
		if err != nil {
			return "", nil, err
		}
		if (lt == "integer" || lt == "number") && (rt == "integer" || rt == "number") {
			return "number", nil, nil
		}
		return "string", nil, nil
	case notNode:
		return "boolean", nil, nil
	case callNode:
		rt, ok := imlFuncTypes[n.name]
		if !ok {
			return "", nil, fmt.Errorf("calls %s(), which the tests do not know", n.name)
		}
		var first string
		for i, a := range n.args {
			t, _, err := exprType(c, a)
			if err != nil {
				return "", nil, err
			}
			if i == 0 {
				first = t
			}
		}
		if rt == "" {
			return first, nil, nil
		}
		return rt, nil, nil
	}
	return "", nil, fmt.Errorf("unknown expression %T", n)
}

// checkValue checks a value of the request (literal, template, object or
// array) against the contract's schema for it.
func checkValue(c call, where string, v any, s *openapi3.Schema) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	allowed := schemaTypes(s)
	switch v := v.(type) {
	case map[string]any:
		if !compatible("object", allowed) {
			add("%s is an object but the contract wants %s", label(where), strings.Join(allowed, " or "))
			return problems
		}
		for _, k := range sortedKeys(v) {
			field := strings.TrimPrefix(where+"."+k, "body.")
			ps := property(s, k)
			if ps == nil {
				if s != nil && s.AdditionalProperties.Schema != nil {
					ps = schemaOf(s.AdditionalProperties.Schema)
				} else {
					add("body field %q is not in the contract", field)
					continue
				}
			}
			problems = append(problems, checkValue(c, where+"."+k, v[k], ps)...)
		}
		if s != nil {
			for _, r := range s.Required {
				field := strings.TrimPrefix(where+"."+r, "body.")
				sent, ok := v[r]
				if !ok {
					add("required body field %q is not sent", field)
					continue
				}
				if t, ok := sent.(string); ok {
					if tpl, err := parseTemplate(t); err == nil {
						if n, ok := tpl.single(); ok {
							if _, p, err := exprType(c, n); err == nil && p != nil && !p.Required {
								add("required body field %q is fed by the optional parameter %s: when it is left empty, Make leaves the field out", field, p.Name)
							}
						}
					}
				}
			}
		}
	case []any:
		if !compatible("array", allowed) {
			add("%s is an array but the contract wants %s", label(where), strings.Join(allowed, " or "))
			return problems
		}
		var items *openapi3.Schema
		if s != nil {
			items = schemaOf(s.Items)
		}
		for i, el := range v {
			problems = append(problems, checkValue(c, fmt.Sprintf("%s[%d]", where, i), el, items)...)
		}
	case string:
		tpl, err := parseTemplate(v)
		if err != nil {
			add("%s: %v", label(where), err)
			return problems
		}
		n, single := tpl.single()
		if !single {
			// Literal text, or text with expressions in it: a string.
			for _, part := range tpl.parts {
				if pn, ok := part.(string); !ok {
					if _, _, err := exprType(c, pn); err != nil {
						add("%s %v", label(where), err)
					}
				}
			}
			if !compatible("string", allowed) {
				add("%s is text but the contract wants %s", label(where), strings.Join(allowed, " or "))
			}
			if enum := schemaEnum(s); !tpl.hasExpr() && len(enum) > 0 && !inEnum(v, enum) {
				add("%s is %q, which is not in the contract's enum %v", label(where), v, enum)
			}
			return problems
		}
		typ, p, err := exprType(c, n)
		if err != nil {
			add("%s %v", label(where), err)
			return problems
		}
		if !compatible(typ, allowed) {
			if p != nil {
				add("%s is fed by parameter %s, which is %s (%s) but the contract wants %s", label(where), p.Name, p.Type, typ, strings.Join(allowed, " or "))
			} else {
				add("%s is %s but the contract wants %s", label(where), typ, strings.Join(allowed, " or "))
			}
			return problems
		}
		if p == nil {
			return problems
		}
		problems = append(problems, checkParamAgainst(label(where), *p, s)...)
	case float64, bool:
		typ := "boolean"
		if f, ok := v.(float64); ok {
			typ = "number"
			if f == float64(int64(f)) {
				typ = "integer"
			}
		}
		if !compatible(typ, allowed) {
			add("%s is %s but the contract wants %s", label(where), typ, strings.Join(allowed, " or "))
		}
	}
	return problems
}

// checkParamAgainst compares what a parameter lets the user enter with what
// the contract accepts: select options against the enum, number bounds
// against minimum and maximum.
func checkParamAgainst(where string, p paramDef, s *openapi3.Schema) []string {
	var problems []string
	if p.Type == "select" {
		target := s
		if p.Multiple && s != nil {
			target = schemaOf(s.Items)
		}
		if enum := schemaEnum(target); len(enum) > 0 {
			if values, static := p.optionValues(); static {
				for _, v := range values {
					if !inEnum(v, enum) {
						problems = append(problems, fmt.Sprintf("%s: parameter %s offers option %q, which the contract's enum %v refuses", where, p.Name, v, enum))
					}
				}
			}
		}
	}
	if (p.Type == "uinteger" || p.Type == "integer" || p.Type == "number") && s != nil {
		v := asMap(p.Raw["validate"])
		pmax, hasMax := v["max"].(float64)
		pmin, hasMin := v["min"].(float64)
		if p.Type == "uinteger" && !hasMin {
			pmin, hasMin = 0, true
		}
		if s.Max != nil && (!hasMax || pmax > *s.Max) {
			problems = append(problems, fmt.Sprintf("%s: parameter %s allows values above the contract's maximum %v (set validate.max)", where, p.Name, *s.Max))
		}
		if s.Min != nil && (!hasMin || pmin < *s.Min) {
			problems = append(problems, fmt.Sprintf("%s: parameter %s allows values below the contract's minimum %v (set validate.min)", where, p.Name, *s.Min))
		}
	}
	return problems
}

func inEnum(v string, enum []any) bool {
	for _, e := range enum {
		if fmt.Sprint(e) == v {
			return true
		}
	}
	return false
}

// label names a place in the request for a message: body paths ("body.a.b")
// read as body field "a.b".
func label(where string) string {
	if field, ok := strings.CutPrefix(where, "body."); ok {
		return fmt.Sprintf("body field %q", field)
	}
	return where
}

// checkResponseRefs checks that the body fields the response mapping and the
// pagination read ({{body.x}}, {{item.x}} of an iterated list) exist in the
// operation's success answer.
func checkResponseRefs(c call, op *openapi3.Operation, opName string) []string {
	var problems []string
	var success *openapi3.Schema
	status := ""
	for _, code := range []string{"200", "201"} {
		if r := op.Responses.Value(code); r != nil && r.Value != nil {
			if mt := r.Value.Content.Get("application/json"); mt != nil {
				success, status = schemaOf(mt.Schema), code
				break
			}
		}
	}
	resp := asMap(c.Spec["response"])
	var itemSchema *openapi3.Schema
	if it, ok := resp["iterate"].(string); ok {
		if n, ok := singleExpr(it); ok {
			if p, ok := n.(pathNode); ok && p.root == "body" {
				if s, err := walkSchema(success, p.steps); err == nil && s != nil {
					itemSchema = schemaOf(s.Items)
				}
			}
		}
	}
	var refs []pathNode
	for k, v := range resp {
		if k == "error" {
			continue // errors are problem+json, not the success body
		}
		collectRefs(v, &refs)
	}
	collectRefs(asMap(c.Spec["pagination"]), &refs)
	for _, r := range refs {
		var root *openapi3.Schema
		switch r.root {
		case "body":
			root = success
		case "item":
			root = itemSchema
		default:
			continue
		}
		name := r.root + "." + stepsText(r.steps)
		if root == nil {
			problems = append(problems, fmt.Sprintf("the response mapping reads %s, but %s documents no JSON success body to read it from", name, opName))
			continue
		}
		if _, err := walkSchema(root, r.steps); err != nil {
			problems = append(problems, fmt.Sprintf("the response mapping reads %s, which the %s answer of %s does not have (%v)", name, status, opName, err))
		}
	}
	return problems
}

func singleExpr(s string) (node, bool) {
	tpl, err := parseTemplate(s)
	if err != nil {
		return nil, false
	}
	return tpl.single()
}

func collectRefs(v any, out *[]pathNode) {
	switch v := v.(type) {
	case string:
		tpl, err := parseTemplate(v)
		if err != nil {
			return
		}
		for _, p := range tpl.parts {
			if _, isText := p.(string); !isText {
				collectNodeRefs(p, out)
			}
		}
	case map[string]any:
		for _, x := range v {
			collectRefs(x, out)
		}
	case []any:
		for _, x := range v {
			collectRefs(x, out)
		}
	}
}

func collectNodeRefs(n node, out *[]pathNode) {
	switch n := n.(type) {
	case pathNode:
		*out = append(*out, n)
	case binNode:
		collectNodeRefs(n.l, out)
		collectNodeRefs(n.r, out)
	case notNode:
		collectNodeRefs(n.x, out)
	case callNode:
		for _, a := range n.args {
			collectNodeRefs(a, out)
		}
	}
}

func stepsText(steps []node) string {
	var parts []string
	for _, s := range steps {
		if name, ok := s.(string); ok {
			parts = append(parts, name)
		} else {
			parts = append(parts, "[]")
		}
	}
	return strings.Join(parts, ".")
}

// walkSchema follows property names (and indexes into arrays) through a
// schema.
func walkSchema(s *openapi3.Schema, steps []node) (*openapi3.Schema, error) {
	for _, st := range steps {
		if s == nil {
			return nil, fmt.Errorf("no schema")
		}
		name, isName := st.(string)
		if !isName {
			if s.Items == nil {
				return nil, fmt.Errorf("indexes into a non-array")
			}
			s = schemaOf(s.Items)
			continue
		}
		p := property(s, name)
		if p == nil {
			props := sortedKeys(s.Properties)
			sort.Strings(props)
			return nil, fmt.Errorf("no property %q; it has %v", name, props)
		}
		s = p
	}
	return s, nil
}

package make_test

// A small interpreter for the part of Make's IML the app files use, so the
// tests can run the app's requests and read their types without Make:
// {{...}} templates with dotted paths (backticks for odd names), 1-based
// indexes, string and number literals, + (concatenation or addition), ==, !=,
// !, && and ||, and the built-in functions listed in imlFuncs. Anything else
// is an error, so an app file that starts using more IML fails the tests
// loudly instead of being half-understood.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
)

// node is a parsed IML expression.
type node interface{}

type (
	pathNode struct {
		root  string
		steps []node // string (property) or node (index expression)
	}
	litNode  struct{ v any }
	callNode struct {
		name string
		args []node
	}
	binNode struct {
		op   string
		l, r node
	}
	notNode struct{ x node }
)

// template is a string with {{...}} expressions: parts alternate between
// literal text (string) and expressions (node).
type template struct {
	parts []any
}

// single reports the expression of a template that is exactly one {{...}}.
func (t template) single() (node, bool) {
	if len(t.parts) != 1 {
		return nil, false
	}
	if _, isText := t.parts[0].(string); isText {
		return nil, false
	}
	return t.parts[0], true
}

func (t template) hasExpr() bool {
	for _, p := range t.parts {
		if _, ok := p.(string); !ok {
			return true
		}
	}
	return false
}

func parseTemplate(s string) (template, error) {
	var t template
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			if s != "" {
				t.parts = append(t.parts, s)
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, s[:i])
		}
		rest := s[i+2:]
		j := closing(rest)
		if j < 0 {
			return t, fmt.Errorf("unclosed {{ in %q", s)
		}
		n, err := parseExpr(rest[:j])
		if err != nil {
			return t, fmt.Errorf("in {{%s}}: %w", rest[:j], err)
		}
		t.parts = append(t.parts, n)
		s = rest[j+2:]
	}
}

// closing finds the }} that ends an expression, skipping quoted text.
func closing(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			return i
		}
	}
	return -1
}

type parser struct {
	s   string
	pos int
}

func parseExpr(s string) (node, error) {
	p := &parser{s: s}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(p.s) {
		return nil, fmt.Errorf("unexpected %q at %d", p.s[p.pos:], p.pos)
	}
	return n, nil
}

func (p *parser) space() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n') {
		p.pos++
	}
}

func (p *parser) take(tok string) bool {
	p.space()
	if strings.HasPrefix(p.s[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

func (p *parser) or() (node, error) {
	l, err := p.and()
	for err == nil && p.take("||") {
		var r node
		if r, err = p.and(); err == nil {
			l = binNode{"||", l, r}
		}
	}
	return l, err
}

func (p *parser) and() (node, error) {
	l, err := p.cmp()
	for err == nil && p.take("&&") {
		var r node
		if r, err = p.cmp(); err == nil {
			l = binNode{"&&", l, r}
		}
	}
	return l, err
}

func (p *parser) cmp() (node, error) {
	l, err := p.add()
	if err != nil {
		return nil, err
	}
	for _, op := range []string{"==", "!="} {
		if p.take(op) {
			r, err := p.add()
			if err != nil {
				return nil, err
			}
			return binNode{op, l, r}, nil
		}
	}
	return l, nil
}

func (p *parser) add() (node, error) {
	l, err := p.unary()
	for err == nil {
		p.space()
		if p.pos >= len(p.s) || (p.s[p.pos] != '+' && p.s[p.pos] != '-') {
			break
		}
		op := string(p.s[p.pos])
		p.pos++
		var r node
		if r, err = p.unary(); err == nil {
			l = binNode{op, l, r}
		}
	}
	return l, err
}

func (p *parser) unary() (node, error) {
	p.space()
	if p.pos < len(p.s) && p.s[p.pos] == '!' && !strings.HasPrefix(p.s[p.pos:], "!=") {
		p.pos++
		x, err := p.unary()
		return notNode{x}, err
	}
	if p.pos < len(p.s) && p.s[p.pos] == '-' {
		p.pos++
		x, err := p.unary()
		return binNode{"-", litNode{0.0}, x}, err
	}
	return p.primary()
}

func (p *parser) primary() (node, error) {
	p.space()
	if p.pos >= len(p.s) {
		return nil, fmt.Errorf("expression ends early")
	}
	c := p.s[p.pos]
	switch {
	case c == '(':
		p.pos++
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.take(")") {
			return nil, fmt.Errorf("missing )")
		}
		return n, nil
	case c == '\'' || c == '"':
		s, err := p.quoted(c)
		return litNode{s}, err
	case c >= '0' && c <= '9':
		start := p.pos
		for p.pos < len(p.s) && (p.s[p.pos] >= '0' && p.s[p.pos] <= '9' || p.s[p.pos] == '.') {
			p.pos++
		}
		f, err := strconv.ParseFloat(p.s[start:p.pos], 64)
		return litNode{f}, err
	case isIdent(c):
		name := p.ident()
		switch name {
		case "true", "false":
			return litNode{name == "true"}, nil
		case "null":
			return litNode{nil}, nil
		}
		if p.take("(") {
			call := callNode{name: name}
			if p.take(")") {
				return call, nil
			}
			for {
				a, err := p.or()
				if err != nil {
					return nil, err
				}
				call.args = append(call.args, a)
				if p.take(")") {
					return call, nil
				}
				if !p.take(",") {
					return nil, fmt.Errorf("expected , or ) in call of %s", name)
				}
			}
		}
		path := pathNode{root: name}
		for {
			if p.pos < len(p.s) && p.s[p.pos] == '.' {
				p.pos++
				if p.pos < len(p.s) && p.s[p.pos] == '`' {
					s, err := p.quoted('`')
					if err != nil {
						return nil, err
					}
					path.steps = append(path.steps, s)
				} else if p.pos < len(p.s) && isIdent(p.s[p.pos]) {
					path.steps = append(path.steps, p.ident())
				} else {
					return nil, fmt.Errorf("expected a name after . at %d", p.pos)
				}
				continue
			}
			if p.pos < len(p.s) && p.s[p.pos] == '[' {
				p.pos++
				idx, err := p.or()
				if err != nil {
					return nil, err
				}
				if !p.take("]") {
					return nil, fmt.Errorf("missing ]")
				}
				path.steps = append(path.steps, idx)
				continue
			}
			return path, nil
		}
	}
	return nil, fmt.Errorf("unexpected %q at %d", string(c), p.pos)
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func (p *parser) ident() string {
	start := p.pos
	for p.pos < len(p.s) && isIdent(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

func (p *parser) quoted(q byte) (string, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		p.pos++
		switch {
		case c == '\\' && p.pos < len(p.s):
			b.WriteByte(p.s[p.pos])
			p.pos++
		case c == q:
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("unclosed %c", q)
}

// scope holds the IML variables of one evaluation (parameters, connection,
// webhook, body, headers, statusCode, item).
type scope map[string]any

// eval renders a template: a template that is exactly one {{expr}} keeps the
// expression's type (as in Make, where "{{parameters.limit}}" is a number);
// anything else is text.
func (t template) eval(sc scope) (any, error) {
	if n, ok := t.single(); ok {
		return evalNode(n, sc)
	}
	var b strings.Builder
	for _, p := range t.parts {
		if s, ok := p.(string); ok {
			b.WriteString(s)
			continue
		}
		v, err := evalNode(p.(node), sc)
		if err != nil {
			return nil, err
		}
		b.WriteString(text(v))
	}
	return b.String(), nil
}

// evalString parses and renders s.
func evalString(s string, sc scope) (any, error) {
	t, err := parseTemplate(s)
	if err != nil {
		return nil, err
	}
	return t.eval(sc)
}

func evalNode(n node, sc scope) (any, error) {
	switch n := n.(type) {
	case litNode:
		return n.v, nil
	case pathNode:
		v := sc[n.root]
		for _, st := range n.steps {
			if name, ok := st.(string); ok {
				m, _ := v.(map[string]any)
				v = m[name]
				continue
			}
			iv, err := evalNode(st, sc)
			if err != nil {
				return nil, err
			}
			switch c := v.(type) {
			case []any:
				i, ok := iv.(float64)
				if !ok {
					return nil, fmt.Errorf("index %v is not a number", iv)
				}
				// IML arrays are 1-based; negative indexes count from the end.
				k := int(i) - 1
				if i < 0 {
					k = len(c) + int(i)
				}
				if k < 0 || k >= len(c) {
					v = nil
				} else {
					v = c[k]
				}
			case map[string]any:
				v = c[text(iv)]
			default:
				v = nil
			}
		}
		return v, nil
	case notNode:
		x, err := evalNode(n.x, sc)
		return !truthy(x), err
	case binNode:
		l, err := evalNode(n.l, sc)
		if err != nil {
			return nil, err
		}
		if n.op == "&&" && !truthy(l) || n.op == "||" && truthy(l) {
			return l, nil
		}
		r, err := evalNode(n.r, sc)
		if err != nil {
			return nil, err
		}
		switch n.op {
		case "&&", "||":
			return r, nil
		case "==":
			return text(l) == text(r) && fmt.Sprintf("%T", l) == fmt.Sprintf("%T", r), nil
		case "!=":
			return !(text(l) == text(r) && fmt.Sprintf("%T", l) == fmt.Sprintf("%T", r)), nil
		case "-":
			lf, lok := l.(float64)
			rf, rok := r.(float64)
			if !lok || !rok {
				return nil, fmt.Errorf("- needs numbers, got %T and %T", l, r)
			}
			return lf - rf, nil
		default: // +
			lf, lok := l.(float64)
			rf, rok := r.(float64)
			if lok && rok {
				return lf + rf, nil
			}
			return text(l) + text(r), nil
		}
	case callNode:
		fn, ok := imlFuncs[n.name]
		if !ok {
			return nil, fmt.Errorf("IML function %s() is not supported by the test interpreter", n.name)
		}
		args := make([]any, len(n.args))
		for i, a := range n.args {
			v, err := evalNode(a, sc)
			if err != nil {
				return nil, err
			}
			args[i] = v
		}
		return fn(args)
	}
	return nil, fmt.Errorf("unknown node %T", n)
}

// imlFuncs are the built-in IML functions the app files use, with Make's
// semantics as documented at https://help.make.com/functions.
var imlFuncs = map[string]func(args []any) (any, error){
	"ifempty": func(a []any) (any, error) {
		if err := arity("ifempty", a, 2); err != nil {
			return nil, err
		}
		if empty(a[0]) {
			return a[1], nil
		}
		return a[0], nil
	},
	"sha256": func(a []any) (any, error) {
		if err := arity("sha256", a, 1); err != nil {
			return nil, err
		}
		sum := sha256.Sum256([]byte(text(a[0])))
		return hex.EncodeToString(sum[:]), nil
	},
	"join": func(a []any) (any, error) {
		if err := arity("join", a, 2); err != nil {
			return nil, err
		}
		arr, _ := a[0].([]any)
		parts := make([]string, len(arr))
		for i, v := range arr {
			parts[i] = text(v)
		}
		return strings.Join(parts, text(a[1])), nil
	},
	"map": func(a []any) (any, error) {
		if err := arity("map", a, 2); err != nil {
			return nil, err
		}
		arr, _ := a[0].([]any)
		out := []any{}
		for _, v := range arr {
			m, _ := v.(map[string]any)
			out = append(out, m[text(a[1])])
		}
		return out, nil
	},
	"toCollection": func(a []any) (any, error) {
		if err := arity("toCollection", a, 3); err != nil {
			return nil, err
		}
		arr, _ := a[0].([]any)
		out := map[string]any{}
		for _, v := range arr {
			m, _ := v.(map[string]any)
			if k := text(m[text(a[1])]); k != "" {
				out[k] = m[text(a[2])]
			}
		}
		return out, nil
	},
}

// imlFuncTypes is the JSON type each function returns ("" for the type of its
// first argument), for the contract test.
var imlFuncTypes = map[string]string{
	"ifempty":      "",
	"sha256":       "string",
	"join":         "string",
	"map":          "array",
	"toCollection": "object",
}

func arity(name string, a []any, n int) error {
	if len(a) != n {
		return fmt.Errorf("%s() takes %d arguments, got %d", name, n, len(a))
	}
	return nil
}

// text renders a value the way a template shows it; nothing renders as "".
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int:
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = text(x)
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(v)
	}
}

// empty is IML's notion of an empty value (ifempty, and the keys Make leaves
// out of a request).
func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

func truthy(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case float64:
		return v != 0
	}
	return !empty(v)
}

func TestIMLInterpreter(t *testing.T) {
	sc := scope{
		"parameters": map[string]any{"a": "x", "n": 3.0, "tags": []any{"p", "q"},
			"meta": []any{map[string]any{"key": "k1", "value": "v1"}, map[string]any{"key": "k2", "value": "v2"}}},
		"headers": map[string]any{"retry-after": "12"},
		"body":    map[string]any{"data": []any{map[string]any{"id": "first"}, map[string]any{"id": "last"}}},
	}
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"{{parameters.a}}", "x"},
		{"{{parameters.n}}", 3.0},
		{"n={{parameters.n}}", "n=3"},
		{"{{parameters.missing}}", nil},
		{"[{{parameters.missing}}]", "[]"},
		{"{{ifempty(parameters.missing, 'fallback')}}", "fallback"},
		{"{{ifempty(parameters.a, 'fallback')}}", "x"},
		{"{{'make-' + parameters.a + '|' + parameters.missing}}", "make-x|"},
		{"{{join(parameters.tags, ',')}}", "p,q"},
		{"{{join(map(parameters.meta, 'value'), ';')}}", "v1;v2"},
		{"{{headers.`retry-after`}}", "12"},
		{"{{body.data[1].id}}/{{body.data[-1].id}}", "first/last"},
		{"{{parameters.n + 1}}", 4.0},
		{"{{parameters.a == 'x' && !parameters.missing}}", true},
		{"{{sha256('abc')}}", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	} {
		got, err := evalString(tc.in, sc)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.in, got, tc.want)
		}
	}
	coll, err := evalString("{{toCollection(parameters.meta, 'key', 'value')}}", sc)
	if err != nil || fmt.Sprint(coll) != "map[k1:v1 k2:v2]" {
		t.Errorf("toCollection = %v, %v", coll, err)
	}
	for _, bad := range []string{"{{parameters.a", "{{nosuch(1)}}", "{{parameters.}}", "{{join(parameters.tags)}}"} {
		if _, err := evalString(bad, sc); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

package make_test

// Loading the Make app as the Make Apps Editor (VS Code) keeps it on disk:
// makecomapp.json names every component and its code files.

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// appDir is the app's root, where makecomapp.json lives.
const appDir = "."

// component is one connection, module, RPC or webhook with its code files
// parsed (code type → JSON value; absent when the manifest says null).
type component struct {
	Kind  string // connection, module, rpc, webhook
	Name  string
	Meta  map[string]any
	Files map[string]any
}

// appDef is the whole app.
type appDef struct {
	Manifest   map[string]any
	Base       map[string]any
	Groups     []any
	Components map[string]map[string]*component // kind → name → component
}

func loadApp(t testing.TB) *appDef {
	t.Helper()
	a, err := readApp(appDir)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func readApp(dir string) (*appDef, error) {
	var a appDef
	if err := readJSON(filepath.Join(dir, "makecomapp.json"), &a.Manifest); err != nil {
		return nil, err
	}
	general, _ := a.Manifest["generalCodeFiles"].(map[string]any)
	if err := readJSON(filepath.Join(dir, str(general["base"])), &a.Base); err != nil {
		return nil, fmt.Errorf("base: %w", err)
	}
	if err := readJSON(filepath.Join(dir, str(general["groups"])), &a.Groups); err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, str(general["readme"]))); err != nil {
		return nil, fmt.Errorf("readme: %w", err)
	}
	a.Components = map[string]map[string]*component{}
	comps, _ := a.Manifest["components"].(map[string]any)
	for _, kind := range []string{"connection", "module", "rpc", "webhook", "function"} {
		byName, ok := comps[kind].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("makecomapp.json: components.%s is missing", kind)
		}
		a.Components[kind] = map[string]*component{}
		for name, raw := range byName {
			meta, _ := raw.(map[string]any)
			c := &component{Kind: kind, Name: name, Meta: meta, Files: map[string]any{}}
			files, _ := meta["codeFiles"].(map[string]any)
			for codeType, p := range files {
				if p == nil {
					continue
				}
				var v any
				if err := readJSON(filepath.Join(dir, str(p)), &v); err != nil {
					return nil, fmt.Errorf("%s %s: %s: %w", kind, name, codeType, err)
				}
				c.Files[codeType] = v
			}
			a.Components[kind][name] = c
		}
	}
	return &a, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// clone deep-copies the app, for tests that break a copy on purpose.
func (a *appDef) clone() *appDef {
	b, err := json.Marshal(a)
	if err != nil {
		panic(err)
	}
	var c appDef
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}

func (a *appDef) get(kind, name string) *component {
	c := a.Components[kind][name]
	if c == nil {
		panic(fmt.Sprintf("no %s %s in the app", kind, name))
	}
	return c
}

// request returns a code file that is a request (communication, attach,
// detach) as an object.
func (c *component) request(codeType string) map[string]any {
	m, _ := c.Files[codeType].(map[string]any)
	return m
}

// paramDef is one parameter of a module, RPC, webhook or connection.
type paramDef struct {
	Name     string
	Type     string
	Required bool
	Multiple bool
	Options  any
	Raw      map[string]any
}

// params collects the parameters of the given code files (static and
// mappable ones, and the nested parameters of select options), by name.
func (c *component) params(codeTypes ...string) map[string]paramDef {
	out := map[string]paramDef{}
	for _, ct := range codeTypes {
		list, _ := c.Files[ct].([]any)
		collectParams(list, true, out)
	}
	return out
}

func collectParams(list []any, topLevel bool, out map[string]paramDef) {
	for _, raw := range list {
		m, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		p := paramDef{
			Name:     str(m["name"]),
			Type:     str(m["type"]),
			Required: m["required"] == true && topLevel,
			Multiple: m["multiple"] == true,
			Options:  m["options"],
			Raw:      m,
		}
		if _, seen := out[p.Name]; !seen && p.Name != "" {
			out[p.Name] = p
		}
		if opts, ok := m["options"].([]any); ok {
			for _, o := range opts {
				om, _ := o.(map[string]any)
				nested, _ := om["nested"].([]any)
				// A nested parameter only shows when its option is chosen, so
				// it is never required for the request as a whole.
				collectParams(nested, false, out)
			}
		}
		if nested, ok := m["nested"].([]any); ok {
			collectParams(nested, false, out)
		}
	}
}

// optionValues lists a select's static option values; ok is false for
// options loaded from an RPC.
func (p paramDef) optionValues() (values []string, ok bool) {
	opts, isList := p.Options.([]any)
	if !isList {
		return nil, false
	}
	for _, o := range opts {
		om, _ := o.(map[string]any)
		values = append(values, str(om["value"]))
	}
	return values, true
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestAppLayout checks the app is complete the way the Make Apps Editor
// expects it: every code file named in makecomapp.json exists and is JSON,
// no stray file is left out of the manifest, and components refer to each
// other correctly.
func TestAppLayout(t *testing.T) {
	a := loadApp(t)

	// Every *.iml.json or .json file in the tree is named by the manifest.
	named := map[string]bool{"makecomapp.json": true}
	general, _ := a.Manifest["generalCodeFiles"].(map[string]any)
	for _, p := range general {
		if p != nil {
			named[str(p)] = true
		}
	}
	comps, _ := a.Manifest["components"].(map[string]any)
	for _, byName := range comps {
		for _, raw := range byName.(map[string]any) {
			files, _ := raw.(map[string]any)["codeFiles"].(map[string]any)
			for _, p := range files {
				if p != nil {
					named[str(p)] = true
				}
			}
		}
	}
	err := filepath.WalkDir(appDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != appDir {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".json") && !named[filepath.ToSlash(path)] {
			t.Errorf("%s is not named in makecomapp.json, so the VS Code extension would never deploy it", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The manifest's shape, as the extension's makecomapp schema wants it.
	if a.Manifest["fileVersion"] != 1.0 {
		t.Errorf("makecomapp.json: fileVersion %v, want 1", a.Manifest["fileVersion"])
	}
	for _, k := range []string{"base", "common", "readme", "groups"} {
		if _, ok := general[k]; !ok {
			t.Errorf("makecomapp.json: generalCodeFiles.%s is missing (null when unused)", k)
		}
	}
	origins, _ := a.Manifest["origins"].([]any)
	if len(origins) == 0 {
		t.Error("makecomapp.json: no origin to deploy to")
	}
	for _, o := range origins {
		for _, k := range []string{"baseUrl", "appId", "appVersion", "apikeyFile"} {
			if _, ok := asMap(o)[k]; !ok {
				t.Errorf("makecomapp.json: origin lacks %s", k)
			}
		}
	}
	codeTypes := map[string][]string{
		"connection": {"communication", "params", "common", "scopeList", "defaultScope", "installSpec", "installDirectives"},
		"webhook":    {"communication", "params", "attach", "detach", "update", "requiredScope"},
		"module":     {"communication", "epoch", "staticParams", "mappableParams", "interface", "samples", "scope"},
		"rpc":        {"communication", "params"},
		"function":   {"code", "test"},
	}
	for kind, byName := range a.Components {
		for name, c := range byName {
			files, _ := c.Meta["codeFiles"].(map[string]any)
			for ct := range files {
				if !slices.Contains(codeTypes[kind], ct) {
					t.Errorf("%s %s: codeFiles.%s is not a code type of a %s", kind, name, ct, kind)
				}
			}
		}
	}

	moduleTypes := map[string]bool{"action": true, "search": true, "trigger": true, "instant_trigger": true, "universal": true, "responder": true}
	for _, name := range sortedKeys(a.Components["module"]) {
		m := a.Components["module"][name]
		mt := str(m.Meta["moduleType"])
		if !moduleTypes[mt] {
			t.Errorf("module %s: moduleType %q is not one of Make's", name, mt)
		}
		if mt == "instant_trigger" {
			hook := str(m.Meta["webhook"])
			if a.Components["webhook"][hook] == nil {
				t.Errorf("module %s: webhook %q does not exist", name, hook)
			}
		} else if a.Components["connection"][str(m.Meta["connection"])] == nil {
			t.Errorf("module %s: connection %q does not exist", name, m.Meta["connection"])
		}
		for _, ct := range []string{"communication", "staticParams", "mappableParams", "interface", "samples"} {
			if _, ok := m.Files[ct]; !ok {
				t.Errorf("module %s has no %s file", name, ct)
			}
		}
	}
	for _, kind := range []string{"rpc", "webhook"} {
		for _, name := range sortedKeys(a.Components[kind]) {
			c := a.Components[kind][name]
			if a.Components["connection"][str(c.Meta["connection"])] == nil {
				t.Errorf("%s %s: connection %q does not exist", kind, name, c.Meta["connection"])
			}
		}
	}

	// Every module is in a group, once.
	grouped := map[string]int{}
	for _, g := range a.Groups {
		mods, _ := g.(map[string]any)["modules"].([]any)
		for _, m := range mods {
			grouped[str(m)]++
		}
	}
	for _, name := range sortedKeys(a.Components["module"]) {
		if grouped[name] != 1 {
			t.Errorf("module %s is in %d groups of modules/groups.json, want 1", name, grouped[name])
		}
	}

	// rpc:// options name existing RPCs.
	for _, kind := range []string{"module", "webhook", "rpc"} {
		for _, name := range sortedKeys(a.Components[kind]) {
			c := a.Components[kind][name]
			for pname, p := range c.params("staticParams", "mappableParams", "params") {
				if s, ok := p.Options.(string); ok {
					rpc, found := strings.CutPrefix(s, "rpc://")
					if !found || a.Components["rpc"][rpc] == nil {
						t.Errorf("%s %s: parameter %s loads options from %q, which is no RPC of the app", kind, name, pname, s)
					}
				}
			}
		}
	}

	// Requests are well formed: an object with a url (or, for an instant
	// trigger, nothing), and JSON bodies only on methods that take one.
	for _, c := range allCalls(a) {
		if str(c.Spec["url"]) == "" {
			t.Errorf("%s: no url", c.Where)
		}
	}
}

package make_test

// The modules' output interfaces and samples describe the Media record of
// schemas/media.json: the same fields, with Make types that fit the JSON
// types, and samples that are valid records.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chatvault/chatvault/internal/contract"
)

const schemasDir = "../../schemas"

var (
	checkerOnce sync.Once
	checker     *contract.Checker
	checkerErr  error
)

// loadChecker loads the contract checker of internal/contract, which
// validates bodies against openapi.yaml and schemas/*.json.
func loadChecker(t testing.TB) *contract.Checker {
	t.Helper()
	checkerOnce.Do(func() { checker, checkerErr = contract.Load(specPath) })
	if checkerErr != nil {
		t.Fatalf("loading the contract: %v", checkerErr)
	}
	return checker
}

// jsonSchema is a schema file read as plain JSON, with $ref to sibling files
// resolved on demand.
type jsonSchema map[string]any

func readSchema(t testing.TB, file string) jsonSchema {
	t.Helper()
	var s jsonSchema
	if err := readJSON(filepath.Join(schemasDir, file), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s jsonSchema) resolve(t testing.TB) jsonSchema {
	if ref, ok := s["$ref"].(string); ok && !strings.HasPrefix(ref, "#") {
		return readSchema(t, ref).resolve(t)
	}
	return s
}

func (s jsonSchema) props(t testing.TB) map[string]jsonSchema {
	out := map[string]jsonSchema{}
	raw, _ := s["properties"].(map[string]any)
	for k, v := range raw {
		m, _ := v.(map[string]any)
		out[k] = jsonSchema(m).resolve(t)
	}
	return out
}

func (s jsonSchema) types() []string {
	switch v := s["type"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, str(x))
		}
		return out
	}
	return nil
}

// interfaceFits says whether a Make interface type shows a JSON value of
// the schema well.
func interfaceFits(makeType string, s jsonSchema) bool {
	ts := s.types()
	switch makeType {
	case "text":
		return slices.Contains(ts, "string") && s["format"] == nil
	case "url":
		return slices.Contains(ts, "string") && (isURIFormat(s) || emptyOrURI(s))
	case "date":
		return slices.Contains(ts, "string") && s["format"] == "date-time"
	case "uinteger":
		min, _ := s["minimum"].(float64)
		return slices.Contains(ts, "integer") && s["minimum"] != nil && min >= 0
	case "integer", "number":
		return slices.Contains(ts, "integer") || slices.Contains(ts, "number")
	case "boolean":
		return slices.Contains(ts, "boolean")
	case "array":
		return slices.Contains(ts, "array")
	case "collection", "any":
		return slices.Contains(ts, "object")
	}
	return false
}

func isURIFormat(s map[string]any) bool {
	return s["format"] == "uri" || s["format"] == "uri-reference"
}

// emptyOrURI says whether a string schema is "a URI or the empty string":
// anyOf [{const: ""}, {format: uri}], as crm_fields.playable_url is.
func emptyOrURI(s jsonSchema) bool {
	alts, _ := s["anyOf"].([]any)
	uri := false
	for _, a := range alts {
		m, _ := a.(map[string]any)
		switch {
		case m["const"] == "":
		case isURIFormat(m):
			uri = true
		default:
			return false
		}
	}
	return uri
}

func checkInterface(t *testing.T, where string, fields []any, s jsonSchema) {
	t.Helper()
	props := s.props(t)
	seen := map[string]bool{}
	for _, raw := range fields {
		f, _ := raw.(map[string]any)
		name, typ := str(f["name"]), str(f["type"])
		seen[name] = true
		ps, ok := props[name]
		if !ok {
			t.Errorf("%s: interface field %s is not in the schema", where, name)
			continue
		}
		if !interfaceFits(typ, ps) {
			t.Errorf("%s: interface field %s is %s, which does not fit the schema's %v (format %v)", where, name, typ, ps.types(), ps["format"])
		}
		if typ == "collection" {
			spec, _ := f["spec"].([]any)
			checkInterface(t, where+"."+name, spec, ps)
		}
		if typ == "array" {
			spec, _ := f["spec"].(map[string]any)
			items, _ := ps["items"].(map[string]any)
			itemSchema := jsonSchema(items).resolve(t)
			if spec == nil || !interfaceFits(str(spec["type"]), itemSchema) {
				t.Errorf("%s: interface field %s lists items as %v, which does not fit the schema's items", where, name, spec)
			} else if str(spec["type"]) == "collection" {
				// An array of objects (renditions, processing.failures):
				// the items' fields are checked like a collection's.
				itemSpec, _ := spec["spec"].([]any)
				checkInterface(t, where+"."+name+"[]", itemSpec, itemSchema)
			}
		}
	}
	for _, name := range sortedKeys(props) {
		if !seen[name] {
			t.Errorf("%s: the schema's field %s is missing from the interface", where, name)
		}
	}
}

func TestInterfacesAndSamples(t *testing.T) {
	a := loadApp(t)
	media := readSchema(t, "media.json")
	check := loadChecker(t)
	for _, name := range []string{"archiveMedia", "tagMedia", "listCustomerMedia", "watchNewMedia", "watchProcessedMedia"} {
		m := a.get("module", name)
		iface, _ := m.Files["interface"].([]any)
		checkInterface(t, "module "+name, iface, media)
		sample, err := json.Marshal(m.Files["samples"])
		if err != nil {
			t.Fatal(err)
		}
		if err := check.CheckSchema("media.json", sample); err != nil {
			t.Errorf("module %s: the sample is not a valid Media record: %v", name, err)
		}
	}
	// The interface is the same file five times (Make wants one per
	// module); keep the copies identical.
	want, _ := os.ReadFile(filepath.Join("modules", "archive-media", "archive-media.interface.iml.json"))
	for _, dir := range []string{"tag-media", "list-customer-media", "watch-new-media", "watch-processed-media"} {
		got, _ := os.ReadFile(filepath.Join("modules", dir, dir+".interface.iml.json"))
		if string(got) != string(want) {
			t.Errorf("modules/%s: the interface differs from archive-media's", dir)
		}
	}
}

// TestWebhookPayloadMapping checks each webhook turns a delivery into a
// bundle from fields that every event it subscribes to has (newMedia:
// media.archived, processedMedia: media.processed), and that this bundle is
// the record the trigger's interface describes.
func TestWebhookPayloadMapping(t *testing.T) {
	a := loadApp(t)
	want := map[string][]string{"newMedia": {"media.archived"}, "processedMedia": {"media.processed"}}
	if got := sortedKeys(a.Components["webhook"]); !slices.Equal(got, sortedKeys(want)) {
		t.Errorf("webhooks %v, want %v", got, sortedKeys(want))
	}
	for _, hook := range sortedKeys(a.Components["webhook"]) {
		c := a.get("webhook", hook)
		var events []string
		raw, _ := asMap(c.request("attach")["body"])["events"].([]any)
		for _, e := range raw {
			events = append(events, str(e))
		}
		if w, ok := want[hook]; ok && !slices.Equal(events, w) {
			t.Errorf("webhook %s subscribes to %v, want %v", hook, events, w)
		}
		spec := c.request("communication")
		n, ok := singleExpr(str(spec["output"]))
		path, isPath := n.(pathNode)
		if !ok || !isPath || path.root != "body" {
			t.Errorf("webhook %s: output %v is not a {{body...}} path", hook, spec["output"])
			continue
		}
		for _, ev := range events {
			s := readSchema(t, "event-"+strings.ReplaceAll(ev, ".", "-")+".json")
			found := true
			for _, st := range path.steps {
				name, _ := st.(string)
				next, ok := s.props(t)[name]
				if !ok {
					t.Errorf("webhook %s: output reads body.%s, but a %s event has no %q", hook, stepsText(path.steps), ev, name)
					found = false
					break
				}
				s = next
			}
			if found && s["$id"] != "media.json" {
				t.Errorf("webhook %s: output body.%s is %v in a %s event, want the Media record (media.json)", hook, stepsText(path.steps), s["$id"], ev)
			}
		}
		// Each webhook feeds exactly one instant trigger.
		var triggers []string
		for _, name := range sortedKeys(a.Components["module"]) {
			if m := a.Components["module"][name]; str(m.Meta["webhook"]) == hook {
				triggers = append(triggers, name)
			}
		}
		if len(triggers) != 1 {
			t.Errorf("webhook %s feeds the modules %v, want one instant trigger", hook, triggers)
		}
	}
}

package strictyaml

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// check walks the document against v's type and reports every unknown key,
// repeated key and value of the wrong kind, in the order of the file.
func check(doc *yaml.Node, v any) error {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return fmt.Errorf("strictyaml: Decode needs a pointer, not %T", v)
	}
	c := &checker{budget: maxVisits}
	c.walk(doc.Content[0], t.Elem(), path{})
	if c.budget < 0 {
		return errors.New("aliases expand to too many values")
	}
	return errors.Join(c.errs...)
}

// maxVisits bounds the values check looks at: aliases of aliases can make a
// small file expand into billions ("billion laughs").
const maxVisits = 1 << 20

type checker struct {
	errs   []error
	budget int
}

func (c *checker) add(err error) { c.errs = append(c.errs, err) }

func (c *checker) walk(n *yaml.Node, t reflect.Type, p path) {
	if c.budget--; c.budget < 0 {
		return
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if custom(t) {
		c.scalar(n, t, p)
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.add(valueError(n, p, "want a mapping"))
			return
		}
		c.mapping(n, fieldsOf(t), p)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.add(valueError(n, p, "want a mapping"))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.walk(n.Content[i+1], t.Elem(), p.key(n.Content[i].Value))
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			c.add(valueError(n, p, "want a list"))
			return
		}
		for i, item := range n.Content {
			c.walk(item, t.Elem(), p.index(i))
		}
	case reflect.Interface:
	default:
		c.scalar(n, t, p)
	}
}

// custom reports whether t (or *t) decodes itself.
func custom(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(unmarshalerType) || pt.Implements(unmarshalerType) ||
		t.Implements(textUnmarshalerType) || pt.Implements(textUnmarshalerType)
}

// scalar decodes n alone into a fresh t to learn whether it fits.
func (c *checker) scalar(n *yaml.Node, t reflect.Type, p path) {
	err := n.Decode(reflect.New(t).Interface())
	if err == nil {
		return
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		// A type's own UnmarshalYAML speaks for itself.
		c.add(valueError(n, p, "%v", err))
		return
	}
	c.add(valueError(n, p, "want %s", kindName(t)))
}

func valueError(n *yaml.Node, p path, format string, a ...any) error {
	got := "a mapping"
	switch n.Kind {
	case yaml.ScalarNode:
		got = fmt.Sprintf("%q", n.Value)
	case yaml.SequenceNode:
		got = "a list"
	}
	msg := fmt.Sprintf(format, a...)
	if strings.HasPrefix(msg, "want ") {
		msg += ", got " + got
	}
	if w := p.where(); w != "" {
		msg = w + ": " + msg
	}
	return lineError(n, "%s", msg)
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return "a " + t.Kind().String()
}

// field is one key a struct accepts.
type field struct {
	key  string
	t    reflect.Type
	noun string // from the strictyaml tag: names the items of a list
}

// fieldsOf lists the keys yaml.v3 maps onto t's fields, inline structs
// flattened, in declaration order.
func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if !f.IsExported() && !f.Anonymous || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				out = append(out, fieldsOf(ft)...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, field{key: name, t: f.Type, noun: f.Tag.Get("strictyaml")})
	}
	return out
}

// mapping checks the keys of one struct's mapping and walks their values.
func (c *checker) mapping(n *yaml.Node, fields []field, p path) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" {
			// "<<: *defaults" merges another mapping's keys in.
			for val.Kind == yaml.AliasNode && val.Alias != nil {
				val = val.Alias
			}
			if val.Kind == yaml.MappingNode {
				c.mapping(val, fields, p)
			}
			continue
		}
		if line, dup := seen[k.Value]; dup {
			c.add(lineError(k, "key %q%s already defined at line %d", p.key(k.Value).keys, in(p), line))
			continue
		}
		seen[k.Value] = k.Line
		f, ok := lookup(fields, k.Value)
		if !ok {
			msg := fmt.Sprintf("unknown key %q%s", p.key(k.Value).keys, in(p))
			if s := suggest(k.Value, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", p.key(s).keys)
			}
			c.add(lineError(k, "%s", msg))
			continue
		}
		if f.noun != "" && val.Kind == yaml.SequenceNode {
			c.items(val, f)
			continue
		}
		c.walk(val, f.t, p.key(f.key))
	}
}

// items walks a list whose items are named by their name key.
func (c *checker) items(n *yaml.Node, f field) {
	et := f.t
	if et.Kind() == reflect.Slice || et.Kind() == reflect.Array {
		et = et.Elem()
	}
	for i, item := range n.Content {
		label := fmt.Sprintf("%s #%d", f.noun, i+1)
		if item.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(item.Content); j += 2 {
				if k, v := item.Content[j], item.Content[j+1]; k.Value == "name" && v.Kind == yaml.ScalarNode && v.Value != "" {
					label = fmt.Sprintf("%s %q", f.noun, v.Value)
				}
			}
		}
		c.walk(item, et, path{item: label})
	}
}

// in names the item a key sits in, for an error message.
func in(p path) string {
	if p.item == "" {
		return ""
	}
	return " in " + p.item
}

func lookup(fields []field, key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// Package strictyaml decodes configuration files strictly: an unknown key,
// a second document or an empty file is an error, never silently ignored
// (Boulder's strictyaml idea). Its errors speak the user's terms: the real
// line, the key path as written in the file, the named item it sits in
// ("service \"web\""), and a did-you-mean for a mistyped key; never a Go
// type name. It is a leaf any package may import.
//
// A list field tagged `strictyaml:"NOUN"` names its items NOUN "NAME" in
// errors, NAME being the item's name key (NOUN #N without one):
//
//	Services []Service `yaml:"services" strictyaml:"service"`
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decode decodes exactly one YAML document from data into v, refusing keys
// v has no field for. Every unknown key and every value of the wrong kind
// is reported, joined with errors.Join, each with its line.
func Decode(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty config")
		}
		return syntaxError(data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	if len(doc.Content) == 0 {
		return errors.New("empty config")
	}
	if err := check(&doc, v); err != nil {
		return err
	}
	if err := doc.Decode(v); err != nil {
		// check found nothing, so this is a case it does not model.
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

// yamlLine matches the position yaml.v3 puts in front of a syntax error.
var yamlLine = regexp.MustCompile(`^yaml: (?:line \d+: )?`)

// hints explain the parser's problems that mean a line is indented wrong.
var hints = map[string]string{
	"did not find expected key":           " (check this line's indentation)",
	"did not find expected '-' indicator": " (check this line's indentation)",
}

// maxSearchLines bounds the search of syntaxError: each step parses the
// file again, about 2µs a line.
const maxSearchLines = 20000

// syntaxError reports a parse error at the line where the parser gave up.
// yaml.v3 prefers the line where the enclosing block starts, and counts it
// from 0: a mis-indented line 6 in a list that starts on line 3 comes out
// as "line 2". The real line ends the shortest prefix of whole lines that
// fails with the same problem: longer prefixes fail there too, shorter ones
// parse or fail otherwise (cut inside a flow list), so a binary search
// finds it.
func syntaxError(data []byte, err error) error {
	problem := yamlLine.ReplaceAllString(err.Error(), "")
	fails := func(prefix []byte) bool {
		var n yaml.Node
		perr := yaml.Unmarshal(prefix, &n)
		return perr != nil && yamlLine.ReplaceAllString(perr.Error(), "") == problem
	}
	if bytes.Count(data, []byte("\n")) > maxSearchLines || !fails(data) {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var ends []int // ends[i] is where line i+1 ends
	for i, b := range data {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	lo, hi := 0, len(ends) // prefix of lo lines parses, of hi lines fails
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fails(data[:ends[mid-1]]) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return fmt.Errorf("line %d: %s%s", hi, problem, hints[problem])
}

// path is where a node sits, in the user's terms: the named item it is
// in (`service "web"`, empty at the top) and the keys below that item.
type path struct {
	item string
	keys string
}

func (p path) key(k string) path {
	if p.keys != "" {
		k = p.keys + "." + k
	}
	return path{item: p.item, keys: k}
}

func (p path) index(i int) path {
	return path{item: p.item, keys: p.keys + "[" + strconv.Itoa(i) + "]"}
}

// where is the prefix of an error about the value at p.
func (p path) where() string {
	switch {
	case p.item == "":
		return p.keys
	case p.keys == "":
		return p.item
	}
	return p.item + ": " + p.keys
}

// lineError is one problem at a line of the file.
func lineError(n *yaml.Node, format string, a ...any) error {
	return fmt.Errorf("line %d: "+format, append([]any{n.Line}, a...)...)
}

package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Pos is a place in a config file.
type Pos struct {
	Line, Column int
}

// Problem is one thing wrong with a config, located by file position and
// key path, e.g. "parkpage.yaml:14:9: zones.warehouse.outputs[1].group: ...".
type Problem struct {
	File    string
	Pos     Pos
	Path    string
	Message string
	Warning bool // true: reported but does not make the config invalid
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteByte(':')
	}
	if p.Pos.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", p.Pos.Line, p.Pos.Column)
	}
	if b.Len() > 0 {
		b.WriteByte(' ')
	}
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error is every problem found in a config file. It is returned whole so an
// installer fixes them all in one pass.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

// problems collects problems during decoding and validation.
type problems struct {
	file string
	pos  map[string]Pos // key path -> position of its value
	list []Problem
	// bad holds paths whose value could not be decoded: validation stays
	// quiet about them so each mistake is reported once.
	bad map[string]bool
}

func (ps *problems) at(path string) Pos {
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := ps.pos[p]; ok {
			return pos
		}
	}
	return Pos{}
}

func (ps *problems) add(path, format string, args ...any) {
	if ps.bad[path] {
		return
	}
	ps.list = append(ps.list, Problem{File: ps.file, Pos: ps.at(path), Path: path, Message: fmt.Sprintf(format, args...)})
}

func (ps *problems) warn(path, format string, args ...any) {
	ps.list = append(ps.list, Problem{File: ps.file, Pos: ps.at(path), Path: path, Message: fmt.Sprintf(format, args...), Warning: true})
}

func (ps *problems) errors() []Problem {
	var out []Problem
	for _, p := range ps.list {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

func (ps *problems) sorted() []Problem {
	out := append([]Problem(nil), ps.list...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Pos.Line != out[j].Pos.Line {
			return out[i].Pos.Line < out[j].Pos.Line
		}
		return out[i].Pos.Column < out[j].Pos.Column
	})
	return out
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func posOf(n *yaml.Node) Pos { return Pos{n.Line, n.Column} }

var durationType = reflect.TypeOf(Duration(0))

// scalarUnmarshaler is implemented by config types written as one YAML
// scalar with their own syntax (slot ranges, CIDRs).
type scalarUnmarshaler interface {
	UnmarshalScalar(s string) error
}

// bad records a decoding problem at path.
func (ps *problems) decodeErr(path, format string, args ...any) {
	ps.add(path, format, args...)
	if ps.bad == nil {
		ps.bad = map[string]bool{}
	}
	ps.bad[path] = true
}

// decode fills v from n strictly: unknown keys, wrong types and malformed
// scalars are problems located at the offending node. Decoding carries on
// after a problem so every one is reported.
func (ps *problems) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	ps.pos[path] = posOf(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // key present with no value: keep the default
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	if su, ok := v.Addr().Interface().(scalarUnmarshaler); ok {
		if n.Kind != yaml.ScalarNode {
			ps.decodeErr(path, "expected a single value, got a %s", kindName(n))
			return
		}
		if err := su.UnmarshalScalar(n.Value); err != nil {
			ps.decodeErr(path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		ps.decodeStruct(n, v, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			ps.decodeErr(path, "expected a mapping, got a %s", kindName(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kp := join(path, k.Value)
			if _, dup := ps.pos[kp]; dup {
				ps.pos[kp] = posOf(k)
				ps.decodeErr(kp, "defined twice")
				continue
			}
			ev := reflect.New(v.Type().Elem()).Elem()
			ps.decode(val, ev, kp)
			v.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			ps.decodeErr(path, "expected a list, got a %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			ps.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	default:
		ps.decodeScalar(n, v, path)
	}
}

func (ps *problems) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		ps.decodeErr(path, "expected a mapping, got a %s", kindName(n))
		return
	}
	fields := map[string]int{}
	var names []string
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		names = append(names, tag)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			ps.pos[kp] = posOf(k)
			msg := "unknown key"
			if s := suggest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			ps.decodeErr(kp, "%s", msg)
			continue
		}
		if seen[k.Value] {
			ps.pos[kp] = posOf(k)
			ps.decodeErr(kp, "defined twice")
			continue
		}
		seen[k.Value] = true
		ps.decode(val, v.Field(idx), kp)
	}
}

func (ps *problems) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		ps.decodeErr(path, "expected a %s, got a %s", typeName(v.Type()), kindName(n))
		return
	}
	s := n.Value
	if v.Type() == durationType {
		if n.Tag == "!!int" || n.Tag == "!!float" {
			ps.decodeErr(path, "%q is not a duration: write it with a unit, e.g. %ss", s, s)
			return
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			ps.decodeErr(path, "%q is not a duration (write e.g. 90s, 500ms, 2m)", s)
			return
		}
		v.SetInt(int64(d))
		return
	}
	switch v.Kind() {
	case reflect.String:
		if n.Tag != "!!str" && n.Style == 0 && n.Tag != "!!int" && n.Tag != "!!float" {
			ps.decodeErr(path, "expected a string, got %q (quote it)", s)
			return
		}
		v.SetString(s)
	case reflect.Bool:
		if n.Tag != "!!bool" {
			ps.decodeErr(path, "expected true or false, got %q", s)
			return
		}
		v.SetBool(s == "true" || s == "True" || s == "TRUE")
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Int16, reflect.Int8:
		i, err := strconv.ParseInt(s, 0, 64)
		if n.Tag != "!!int" || err != nil || v.OverflowInt(i) {
			ps.decodeErr(path, "expected an integer, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint16, reflect.Uint8:
		u, err := strconv.ParseUint(s, 0, 64)
		if n.Tag != "!!int" || err != nil || v.OverflowUint(u) {
			ps.decodeErr(path, "expected a non-negative integer, got %q", s)
			return
		}
		v.SetUint(u)
	case reflect.Float64, reflect.Float32:
		f, err := strconv.ParseFloat(s, 64)
		if (n.Tag != "!!float" && n.Tag != "!!int") || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			ps.decodeErr(path, "expected a number, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		ps.decodeErr(path, "unsupported config type %s", v.Type())
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return fmt.Sprintf("value %q", n.Value)
	}
	return "node"
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint16, reflect.Uint32, reflect.Uint8:
		return "integer"
	case reflect.Float64:
		return "number"
	}
	return t.String()
}

// suggest returns the known name closest to a misspelt key, if close enough.
func suggest(key string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(key, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

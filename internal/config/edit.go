package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Edit is one change to a config file, as the setup console sends it:
// set the value at Path, or delete it. Path is a list of keys (strings)
// and list indexes (integers), e.g. ["zones", "front", "outputs", 0,
// "port"], so map keys holding dots (a SIP user "j.doe") stay whole. An
// index equal to a list's length appends.
type Edit struct {
	Path   []any `json:"path"`
	Value  any   `json:"value,omitempty"`
	Delete bool  `json:"delete,omitempty"`
}

// PathString writes an edit path the way problems name keys:
// "zones.front.outputs[0].port".
func PathString(path []any) string {
	var b strings.Builder
	for _, s := range path {
		switch v := s.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", v)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, v)
		}
	}
	return b.String()
}

// EditError is an edit that cannot be applied to the file's structure
// (an index past the end of a list, a key under a scalar).
type EditError struct {
	Path string
	Msg  string
}

func (e *EditError) Error() string { return e.Path + ": " + e.Msg }

// maxEditDepth bounds edit paths and values: config keys nest far less.
const maxEditDepth = 12

// NormalizeEdit turns a decoded JSON edit into the types ApplyEdits takes:
// path elements become strings or ints (JSON numbers that are whole and
// non-negative), and the value only JSON's scalars, lists and objects.
func NormalizeEdit(e Edit) (Edit, error) {
	if len(e.Path) == 0 {
		return e, &EditError{"", "empty path"}
	}
	if len(e.Path) > maxEditDepth {
		return e, &EditError{"", fmt.Sprintf("path deeper than %d", maxEditDepth)}
	}
	out := Edit{Delete: e.Delete, Path: make([]any, len(e.Path))}
	for i, s := range e.Path {
		switch v := s.(type) {
		case string:
			if v == "" {
				return e, &EditError{PathString(e.Path[:i]), "empty key"}
			}
			out.Path[i] = v
		case int:
			if v < 0 {
				return e, &EditError{PathString(e.Path[:i]), "negative index"}
			}
			out.Path[i] = v
		case float64:
			if v < 0 || v != math.Trunc(v) || v > 1e6 {
				return e, &EditError{PathString(e.Path[:i]), fmt.Sprintf("%v is not a list index", v)}
			}
			out.Path[i] = int(v)
		case json.Number:
			n, err := strconv.Atoi(string(v))
			if err != nil || n < 0 || n > 1e6 {
				return e, &EditError{PathString(e.Path[:i]), fmt.Sprintf("%v is not a list index", v)}
			}
			out.Path[i] = n
		default:
			return e, &EditError{PathString(e.Path[:i]), fmt.Sprintf("path element %v is neither a key nor an index", s)}
		}
	}
	if _, ok := out.Path[0].(string); !ok {
		return e, &EditError{"", "a path starts with a key"}
	}
	if e.Delete && e.Value != nil {
		return e, &EditError{PathString(out.Path), "delete takes no value"}
	}
	if !e.Delete {
		if err := checkValue(e.Value, 0); err != nil {
			return e, &EditError{PathString(out.Path), err.Error()}
		}
	}
	out.Value = e.Value
	return out, nil
}

func checkValue(v any, depth int) error {
	if depth > maxEditDepth {
		return errors.New("value nested too deep")
	}
	switch x := v.(type) {
	case nil, string, bool, float64, int, json.Number:
		return nil
	case []any:
		for _, e := range x {
			if err := checkValue(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		for k, e := range x {
			if k == "" {
				return errors.New("empty key in value")
			}
			if err := checkValue(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unsupported value %T", v)
}

// ApplyEdits applies edits to a config file's YAML and returns the new
// file. It edits the parsed document tree, so the comments, key order and
// quoting of everything it does not touch are kept, and a replaced value
// keeps the comments it had. A value set to null deletes the key, as does
// Delete. The result is not validated: Parse it.
func ApplyEdits(data []byte, edits []Edit) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("the current file does not parse: %w", err)
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null" {
		doc.Content = []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &EditError{"", "the file's top level is not a mapping"}
	}
	for _, e := range edits {
		e, err := NormalizeEdit(e)
		if err != nil {
			return nil, err
		}
		if e.Delete || e.Value == nil {
			if err := deleteAt(root, e.Path); err != nil {
				return nil, err
			}
			continue
		}
		if err := setAt(root, e.Path, valueNode(e.Value)); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	enc.Close()
	return buf.Bytes(), nil
}

// mapIndex returns the index of key's value in mapping n, or -1.
func mapIndex(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return i + 1
		}
	}
	return -1
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// setAt puts v at path under n, creating the mappings and lists on the way.
func setAt(n *yaml.Node, path []any, v *yaml.Node) error {
	for i, seg := range path {
		last := i == len(path)-1
		here := PathString(path[:i+1])
		n = deref(n)
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			// "key:" with no value: becomes the container the path needs.
			n.Value, n.Style = "", 0
			if _, ok := seg.(int); ok {
				n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
			} else {
				n.Kind, n.Tag = yaml.MappingNode, "!!map"
			}
		}
		var slot **yaml.Node
		switch s := seg.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return &EditError{here, "the file has no mapping here"}
			}
			j := mapIndex(n, s)
			if j < 0 {
				key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
				n.Content = append(n.Content, key, container(path, i+1))
				j = len(n.Content) - 1
			}
			slot = &n.Content[j]
		case int:
			if n.Kind != yaml.SequenceNode {
				return &EditError{here, "the file has no list here"}
			}
			switch {
			case s == len(n.Content):
				n.Content = append(n.Content, container(path, i+1))
			case s > len(n.Content):
				return &EditError{here, fmt.Sprintf("the list has %d items", len(n.Content))}
			}
			slot = &n.Content[s]
		}
		if last {
			old := *slot
			v.HeadComment, v.LineComment, v.FootComment = old.HeadComment, old.LineComment, old.FootComment
			if old.Kind == v.Kind && v.Kind != yaml.ScalarNode && old.Style&yaml.FlowStyle != 0 {
				v.Style |= yaml.FlowStyle
			}
			*slot = v
			return nil
		}
		n = *slot
	}
	return nil
}

// container is the empty node path[i] needs: a list for an index, a
// mapping for a key; a placeholder null past the end of the path.
func container(path []any, i int) *yaml.Node {
	if i >= len(path) {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	}
	if _, ok := path[i].(int); ok {
		return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	}
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
}

// deleteAt removes path under n; a path that is not there is no error.
func deleteAt(n *yaml.Node, path []any) error {
	for i, seg := range path {
		n = deref(n)
		last := i == len(path)-1
		switch s := seg.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return nil
			}
			j := mapIndex(n, s)
			if j < 0 {
				return nil
			}
			if last {
				n.Content = append(n.Content[:j-1], n.Content[j+1:]...)
				return nil
			}
			n = n.Content[j]
		case int:
			if n.Kind != yaml.SequenceNode || s >= len(n.Content) {
				return nil
			}
			if last {
				n.Content = append(n.Content[:s], n.Content[s+1:]...)
				return nil
			}
			n = n.Content[s]
		}
	}
	return nil
}

// valueNode makes the YAML node of a JSON value. Strings are tagged !!str
// so the encoder quotes those that would read as numbers or booleans
// ("700", "on").
func valueNode(v any) *yaml.Node {
	switch x := v.(type) {
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: x}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(x)}
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(x)}
	case json.Number:
		if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: string(x)}
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: string(x)}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(int64(x), 10)}
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(x, 'g', -1, 64)}
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		flow := true
		for _, e := range x {
			c := valueNode(e)
			flow = flow && c.Kind == yaml.ScalarNode
			n.Content = append(n.Content, c)
		}
		if flow {
			n.Style = yaml.FlowStyle // zones: [front, back]
		}
		return n
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		// "type" first: an output reads best starting with what it is.
		sort.SliceStable(keys, func(i, j int) bool { return keys[i] == "type" && keys[j] != "type" })
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, valueNode(x[k]))
		}
		return n
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fmt.Sprint(v)}
}

// View is the effective config (defaults filled in) as plain JSON-able
// data keyed like the file, for the setup console's forms. Secrets
// (passwords, the AMI secret, the admin password hash) are replaced by
// SecretMask when set.
func (c *Config) View() (map[string]any, error) {
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	maskSecrets(m, "")
	// An unset slot timeout is zero in the struct: the slot takes its
	// lot's, so the view leaves it out rather than show "0s".
	if park, ok := m["park"].(map[string]any); ok {
		if slots, ok := park["slots"].(map[string]any); ok {
			for _, s := range slots {
				if sm, ok := s.(map[string]any); ok && sm["timeout"] == "0s" {
					delete(sm, "timeout")
				}
			}
		}
	}
	return m, nil
}

// SecretMask stands for a secret the console does not show. An edit that
// sets a secret to SecretMask is dropped by DropMasked: the secret stays.
const SecretMask = "••••••••"

var secretKeys = map[string]bool{"password": true, "secret": true, "password_hash": true}

func maskSecrets(v any, key string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && secretKeys[k] && s != "" {
				x[k] = SecretMask
				continue
			}
			maskSecrets(e, k)
		}
	case []any:
		for _, e := range x {
			maskSecrets(e, key)
		}
	}
}

// DropMasked removes edits that set a secret to SecretMask (the form sent
// back what it was shown).
func DropMasked(edits []Edit) []Edit {
	out := edits[:0:0]
	for _, e := range edits {
		if s, ok := e.Value.(string); ok && s == SecretMask {
			continue
		}
		out = append(out, e)
	}
	return out
}

// WriteFile replaces path with data atomically and durably (a synced
// temporary file in the same directory, renamed over it): a power cut
// leaves the old file or the new one, never half of one.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

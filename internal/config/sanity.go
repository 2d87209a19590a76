package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// controlChar finds the first control character YAML does not allow in a
// file (C0 but tab, line feed and carriage return; DEL; C1) and returns a
// problem at its line and column, or false.
func controlChar(name string, data []byte) (Problem, bool) {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == '\n' {
			line, col = line+1, 1
			i += n
			continue
		}
		if (r < 0x20 && r != '\t' && r != '\r') || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return Problem{File: name, Pos: Pos{Line: line, Column: col},
				Message: fmt.Sprintf("control character U+%04X is not allowed (write it as an escape in a double-quoted string)", r)}, true
		}
		col++
		i += n
	}
	return Problem{}, false
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// syntaxProblem turns a YAML syntax error into a problem with a line and
// a column. The parser names only a line; the column is where the shortest
// prefix of that line that still fails the same way ends (else the line's
// first character).
func syntaxProblem(name string, data []byte, err error) Problem {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return Problem{File: name, Message: yamlSyntax(err)}
	}
	line, _ := strconv.Atoi(m[1])
	msg := m[2]
	p := Problem{File: name, Pos: Pos{Line: line, Column: 1}, Message: "YAML syntax: " + msg}
	start := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data[start:], '\n')
		if i < 0 {
			return p
		}
		start += i + 1
	}
	end := len(data)
	if i := bytes.IndexByte(data[start:], '\n'); i >= 0 {
		end = start + i
	}
	text := data[start:end]
	if first := len(text) - len(bytes.TrimLeft(text, " ")); first < len(text) {
		p.Pos.Column = utf8.RuneCount(text[:first]) + 1
	}
	for c := 1; c <= len(text); c++ {
		var doc yaml.Node
		e := yaml.NewDecoder(bytes.NewReader(data[:start+c])).Decode(&doc)
		if e != nil && !errors.Is(e, io.EOF) && strings.HasSuffix(e.Error(), fmt.Sprintf("line %d: %s", line, msg)) {
			p.Pos.Column = utf8.RuneCount(text[:c])
			break
		}
	}
	return p
}

// definesNothing is the warning for a file with no settings at all.
func definesNothing(name string) Problem {
	return Problem{File: name, Warning: true,
		Message: "the file defines nothing: every setting is a default (is it empty, or cut short?)"}
}

// MissingSections lists the sections the running config has that a new
// one lacks entirely (zones, relays, pages, phone_pages, external,
// sip.users, park.slots, http credentials): a reload warns about each,
// since a file cut short or the wrong file parses as valid.
func MissingSections(running, next *Config) []string {
	var out []string
	check := func(name string, had, has bool) {
		if had && !has {
			out = append(out, name)
		}
	}
	check("zones", len(running.Zones) > 0, len(next.Zones) > 0)
	check("relays", len(running.Relays) > 0, len(next.Relays) > 0)
	check("pages", len(running.Pages) > 0, len(next.Pages) > 0)
	check("phone_pages", len(running.PhonePages) > 0, len(next.PhonePages) > 0)
	check("sip.users", len(running.SIP.Users) > 0, len(next.SIP.Users) > 0)
	check("park.slots", len(running.Park.Slots) > 0, len(next.Park.Slots) > 0)
	check("http credentials", running.HTTP.HasCredential(), next.HTTP.HasCredential())
	rx, nx := running.External, next.External
	check("external", rx.AMI != nil || rx.BLF != nil || len(rx.WebhookTokens) > 0 || len(rx.SlotMap) > 0,
		nx.AMI != nil || nx.BLF != nil || len(nx.WebhookTokens) > 0 || len(nx.SlotMap) > 0)
	sort.Strings(out)
	return out
}

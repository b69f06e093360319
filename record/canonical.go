package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxCanonicalDepth bounds nesting in a manifest: ours is four deep
// (manifest, files, file, tracks); the bound stops a hostile file from
// recursing the verifier's stack.
const maxCanonicalDepth = 32

// errNotCanonical is a manifest that has no canonical form.
var errNotCanonical = errors.New("record: manifest is not canonical JSON")

// integer is the only number form a manifest holds.
var integer = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,15})$`)

// canonicalJSON is the JSON Canonicalization Scheme (RFC 8785) form of
// the object in raw, leaving out the top-level member named drop: no
// whitespace, members sorted by their names' UTF-16 code units (§3.2.3),
// strings with only the escapes §3.2.2.2 requires. It refuses what a
// signature over it could hide: invalid UTF-8, duplicate member names
// (decoders disagree on which one wins), trailing data, and numbers
// other than integers within ±2^53 (a manifest has no others, and
// RFC 8785's number form is then the integer's plain decimal).
func canonicalJSON(raw []byte, drop string) ([]byte, error) {
	if !utf8.Valid(raw) {
		return nil, fmt.Errorf("%w: invalid UTF-8", errNotCanonical)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out bytes.Buffer
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotCanonical, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%w: not an object", errNotCanonical)
	}
	if err := canonicalObject(dec, &out, drop, 1); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the object", errNotCanonical)
	}
	return out.Bytes(), nil
}

// canonicalValue writes the value whose first token is tok.
func canonicalValue(dec *json.Decoder, tok json.Token, out *bytes.Buffer, depth int) error {
	if depth > maxCanonicalDepth {
		return fmt.Errorf("%w: nested deeper than %d", errNotCanonical, maxCanonicalDepth)
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			return canonicalObject(dec, out, "", depth)
		case '[':
			out.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					out.WriteByte(',')
				}
				t, err := dec.Token()
				if err != nil {
					return fmt.Errorf("%w: %v", errNotCanonical, err)
				}
				if err := canonicalValue(dec, t, out, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil { // ']'
				return fmt.Errorf("%w: %v", errNotCanonical, err)
			}
			out.WriteByte(']')
			return nil
		}
		return fmt.Errorf("%w: unexpected %v", errNotCanonical, v)
	case string:
		canonicalString(out, v)
	case json.Number:
		s := v.String()
		if !integer.MatchString(s) || s == "-0" {
			return fmt.Errorf("%w: number %s is not an integer in canonical form", errNotCanonical, s)
		}
		if n, err := strconv.ParseInt(s, 10, 64); err != nil || n > 1<<53 || n < -(1<<53) {
			return fmt.Errorf("%w: number %s is beyond ±2^53", errNotCanonical, s)
		}
		out.WriteString(s)
	case bool:
		out.WriteString(strconv.FormatBool(v))
	case nil:
		out.WriteString("null")
	default:
		return fmt.Errorf("%w: unexpected %T", errNotCanonical, tok)
	}
	return nil
}

// canonicalObject writes an object whose '{' was read: its members
// sorted, without the one named drop.
func canonicalObject(dec *json.Decoder, out *bytes.Buffer, drop string, depth int) error {
	type member struct {
		name  string
		key   []uint16
		value []byte
	}
	var members []member
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", errNotCanonical, err)
		}
		name, ok := t.(string)
		if !ok {
			return fmt.Errorf("%w: member name %v", errNotCanonical, t)
		}
		if seen[name] {
			return fmt.Errorf("%w: member %q appears twice", errNotCanonical, name)
		}
		seen[name] = true
		v, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", errNotCanonical, err)
		}
		var buf bytes.Buffer
		if err := canonicalValue(dec, v, &buf, depth+1); err != nil {
			return err
		}
		if drop != "" && name == drop {
			continue
		}
		members = append(members, member{name: name, key: utf16.Encode([]rune(name)), value: buf.Bytes()})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return fmt.Errorf("%w: %v", errNotCanonical, err)
	}
	slices.SortFunc(members, func(a, b member) int { return slices.Compare(a.key, b.key) })
	out.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			out.WriteByte(',')
		}
		canonicalString(out, m.name)
		out.WriteByte(':')
		out.Write(m.value)
	}
	out.WriteByte('}')
	return nil
}

// canonicalString writes s quoted as RFC 8785 §3.2.2.2 says: \" and \\,
// the short escapes \b \t \n \f \r, \u00xx (lower-case hex) for the
// other control characters, everything else as itself.
func canonicalString(out *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	out.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			out.WriteString(`\"`)
		case '\\':
			out.WriteString(`\\`)
		case '\b':
			out.WriteString(`\b`)
		case '\t':
			out.WriteString(`\t`)
		case '\n':
			out.WriteString(`\n`)
		case '\f':
			out.WriteString(`\f`)
		case '\r':
			out.WriteString(`\r`)
		default:
			if c < 0x20 {
				out.WriteString(`\u00`)
				out.WriteByte(hex[c>>4])
				out.WriteByte(hex[c&0xf])
				continue
			}
			out.WriteByte(c)
		}
	}
	out.WriteByte('"')
}

package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decode reads a JSON request body strictly: exactly one JSON value (only
// white space may follow it), in valid UTF-8 (encoding/json would silently
// replace invalid bytes with U+FFFD), without unknown fields. The route's
// size cap (wrap's MaxBytesReader) gives 413. Errors name the byte offset
// and, where there is one, the field.
func decode(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errBadRequest("request body is empty: want a JSON object")
	}
	if !utf8.Valid(body) {
		off := invalidUTF8(body)
		msg := fmt.Sprintf("request body: invalid UTF-8 at byte %d", off)
		if field := jsonFieldAt(body, off); field != "" {
			msg += " (in " + field + ")"
		}
		return errBadRequest(msg + ": send text as UTF-8")
	}
	if off := loneSurrogate(body); off >= 0 {
		// encoding/json would turn it into U+FFFD as silently.
		msg := fmt.Sprintf("request body: %s at byte %d is half of a UTF-16 surrogate pair", body[off:off+6], off)
		if field := jsonFieldAt(body, off); field != "" {
			msg += " (in " + field + ")"
		}
		return errBadRequest(msg + ": escape characters beyond U+FFFF as a pair (\\ud83d\\ude00) or send them as UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errBadRequest("request body: " + jsonError(err))
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errBadRequest(fmt.Sprintf("request body: unexpected data after the JSON value at byte %d: send exactly one JSON value", trailingOffset(body, end)))
	}
	return nil
}

// readBody reads a request body within the route's cap: over the cap is
// 413 naming the limit.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &apiError{http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body is over the limit of %d bytes", tooBig.Limit)}
	case err != nil:
		return nil, errBadRequest("request body: " + err.Error())
	}
	return body, nil
}

// jsonError words a decoding error with its position where it has one.
func jsonError(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v (at byte %d)", err, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s: want a JSON %s, got %s (at byte %d)", te.Field, te.Type.Kind(), te.Value, te.Offset)
	}
	return err.Error()
}

// trailingOffset is the offset of the first byte after the value that is
// not white space.
func trailingOffset(body []byte, from int64) int64 {
	for i := from; i < int64(len(body)); i++ {
		switch body[i] {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return i
	}
	return from
}

// loneSurrogate is the offset of the first \uXXXX escape that is half of
// a UTF-16 surrogate pair without its other half, or -1. Backslashes only
// occur in strings in JSON, so each one starts an escape.
func loneSurrogate(body []byte) int {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(body) || body[i] != '\\' || body[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(body[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		switch {
		case !ok:
			i++ // another escape: skip its character
		case r >= 0xd800 && r < 0xdc00:
			if lo, ok := hex4(i + 6); ok && lo >= 0xdc00 && lo < 0xe000 {
				i += 11
				continue
			}
			return i
		case r >= 0xdc00 && r < 0xe000:
			return i
		default:
			i += 5
		}
	}
	return -1
}

// invalidUTF8 is the offset of the first byte of body that is not valid
// UTF-8 (len(body) if there is none).
func invalidUTF8(body []byte) int {
	for i := 0; i < len(body); {
		r, n := utf8.DecodeRune(body[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(body)
}

// jsonLevel is one open object or array while walking a JSON text.
type jsonLevel struct {
	object bool
	key    string // objects: the key of the current value
	keyDue bool   // objects: the next string token is a key
	index  int    // arrays: the index of the current value
}

// valueDone moves the innermost container past one value.
func valueDone(stack []jsonLevel) {
	if n := len(stack); n > 0 {
		if stack[n-1].object {
			stack[n-1].keyDue = true
		} else {
			stack[n-1].index++
		}
	}
}

// jsonPath is `health_check.command[1]` for the value being read.
func jsonPath(stack []jsonLevel) string {
	var b strings.Builder
	for _, l := range stack {
		switch {
		case l.object && b.Len() > 0:
			b.WriteString("." + l.key)
		case l.object:
			b.WriteString(l.key)
		default:
			b.WriteString("[" + strconv.Itoa(l.index) + "]")
		}
	}
	return b.String()
}

// jsonFieldAt names the JSON value (or key) that holds byte off of body:
// `field "script"`, `field "health_check.command[1]"`, `a key of
// "labels"`; "" if it cannot tell. body need not be valid UTF-8.
func jsonFieldAt(body []byte, off int) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	var stack []jsonLevel
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		n := len(stack)
		isKey := n > 0 && stack[n-1].object && stack[n-1].keyDue
		if int(dec.InputOffset()) > off {
			switch {
			case isKey && n == 1:
				return "a key of the body"
			case isKey:
				return fmt.Sprintf("a key of %q", jsonPath(stack[:n-1]))
			case n == 0:
				return ""
			}
			return fmt.Sprintf("field %q", jsonPath(stack))
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, jsonLevel{object: true, keyDue: true})
		case json.Delim('['):
			stack = append(stack, jsonLevel{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:n-1]
			valueDone(stack)
		default:
			if isKey {
				stack[n-1].key, stack[n-1].keyDue = tok.(string), false
				continue
			}
			valueDone(stack)
		}
	}
}

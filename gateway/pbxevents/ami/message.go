package ami

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DefaultMaxMessageSize bounds one manager message. Real events are a few
// hundred bytes; an event with many channel variables stays far below this.
const DefaultMaxMessageSize = 256 << 10

// maxBannerSize bounds the greeting line.
const maxBannerSize = 1024

// Field is one "Key: Value" line of a manager message. A line without a
// key (the raw output of a Command action) has an empty Key and the whole
// line as Value.
type Field struct {
	Key, Value string
}

// Message is one manager packet (an event, a response or an action), its
// fields in wire order. Keys may repeat (ChanVariable).
type Message []Field

// Get returns the value of the first field named key (case-insensitive), or
// "".
func (m Message) Get(key string) string {
	for _, f := range m {
		if strings.EqualFold(f.Key, key) {
			return f.Value
		}
	}
	return ""
}

// Has reports whether m has a field named key (case-insensitive).
func (m Message) Has(key string) bool {
	for _, f := range m {
		if strings.EqualFold(f.Key, key) {
			return true
		}
	}
	return false
}

// AppendTo appends m in wire form: CRLF-terminated lines and an empty line.
func (m Message) AppendTo(b []byte) []byte {
	for _, f := range m {
		if f.Key != "" {
			b = append(b, f.Key...)
			b = append(b, ": "...)
		}
		b = append(b, f.Value...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// check rejects an action that would not survive the wire: a CR or LF in a
// value would inject lines (a secret with a newline must not become a
// header).
func (m Message) check() error {
	for _, f := range m {
		if f.Key == "" || strings.ContainsAny(f.Key, ":\r\n") {
			return fmt.Errorf("field key %q: %w", f.Key, ErrBadField)
		}
		if strings.ContainsAny(f.Value, "\r\n") {
			return fmt.Errorf("field %s: value has a line break: %w", f.Key, ErrBadField)
		}
	}
	return nil
}

// Reader reads manager messages from a stream. Lines may end in CRLF (the
// protocol) or a bare LF (captures, some proxies); a message ends at an
// empty line.
type Reader struct {
	br *bufio.Reader
	// MaxMessageSize bounds one message; a larger one is skipped whole and
	// reported as ErrMessageTooLarge, and the next read continues after it.
	MaxMessageSize int
	line           []byte
}

// NewReader returns a Reader on r with DefaultMaxMessageSize.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 4096), MaxMessageSize: DefaultMaxMessageSize}
}

// ReadBanner reads the greeting line, "Asterisk Call Manager/11.0.0", and
// returns the protocol version after the slash.
func (r *Reader) ReadBanner() (string, error) {
	line, err := r.readLine(maxBannerSize)
	if err != nil {
		if errors.Is(err, errLineTooLong) {
			return "", fmt.Errorf("banner longer than %d bytes: %w", maxBannerSize, ErrNotAMI)
		}
		return "", fmt.Errorf("read banner: %w", err)
	}
	s := string(line)
	name, version, ok := strings.Cut(s, "/")
	if !ok || !strings.HasSuffix(name, "Call Manager") {
		return "", fmt.Errorf("banner %q: %w", truncate(s, 80), ErrNotAMI)
	}
	return version, nil
}

// ReadMessage reads the next message, skipping stray empty lines. At the
// end of the stream it returns io.EOF, or io.ErrUnexpectedEOF inside a
// message.
func (r *Reader) ReadMessage() (Message, error) {
	limit := r.MaxMessageSize
	if limit <= 0 {
		limit = DefaultMaxMessageSize
	}
	var (
		msg      Message
		size     int
		tooLarge bool
	)
	for {
		line, err := r.readLine(limit)
		switch {
		case errors.Is(err, errLineTooLong):
			tooLarge = true
			continue
		case err == io.EOF && (len(msg) > 0 || tooLarge):
			return nil, io.ErrUnexpectedEOF
		case err != nil:
			return nil, err
		}
		if len(line) == 0 {
			if tooLarge {
				return nil, ErrMessageTooLarge
			}
			if len(msg) == 0 {
				continue
			}
			return msg, nil
		}
		if tooLarge {
			continue
		}
		size += len(line) + 2
		if size > limit {
			tooLarge, msg = true, nil
			continue
		}
		msg = append(msg, parseField(line))
	}
}

// parseField splits "Key: Value". Asterisk writes one space after the
// colon; any leading blanks of the value are dropped.
func parseField(line []byte) Field {
	k, v, ok := bytes.Cut(line, []byte(":"))
	k = bytes.TrimSpace(k)
	if !ok || len(k) == 0 {
		return Field{Value: string(line)}
	}
	return Field{Key: string(k), Value: string(bytes.TrimLeft(v, " \t"))}
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its LF or CRLF, valid until the
// next call. A line longer than limit is consumed and reported as
// errLineTooLong. EOF before any byte of a line is io.EOF; EOF inside a line
// is io.ErrUnexpectedEOF.
func (r *Reader) readLine(limit int) ([]byte, error) {
	r.line = r.line[:0]
	tooLong := false
	for {
		frag, err := r.br.ReadSlice('\n')
		if !tooLong {
			if len(r.line)+len(frag) > limit+2 { // +2: the CRLF is not content
				tooLong, r.line = true, r.line[:0]
			} else {
				r.line = append(r.line, frag...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && (len(r.line) > 0 || tooLong) {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		break
	}
	if tooLong {
		return nil, errLineTooLong
	}
	line := r.line[:len(r.line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > limit {
		return nil, errLineTooLong
	}
	return line, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

package cep

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// DefaultMaxLineBytes is the longest line a FileReader accepts when its
// limit is left at zero. Longer lines are reported and skipped.
const DefaultMaxLineBytes = 1 << 20

// ErrLineTooLong is wrapped by the LineError that FileReader.Next returns
// for a line over the reader's limit. Reading can go on after it.
var ErrLineTooLong = errors.New("line too long")

// LineError is a problem confined to one line of a recorded file: the line
// is lost, the rest of the file is not.
type LineError struct {
	File string
	Line int64 // 1-based
	Err  error
}

// Error formats the problem as file:line: reason, the form every offline
// dead-letter report takes.
func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

// Unwrap returns the reason.
func (e *LineError) Unwrap() error { return e.Err }

// FileReader streams the non-blank lines of a recorded event file, unzipping
// it when its name ends in .gz. It never holds more than one line (up to its
// limit) in memory.
type FileReader struct {
	name   string
	br     *bufio.Reader
	max    int
	line   int64
	long   []byte // assembles lines longer than the bufio buffer
	closer []io.Closer
}

// OpenFile opens a recorded event file. maxLineBytes <= 0 means
// DefaultMaxLineBytes.
func OpenFile(name string, maxLineBytes int) (*FileReader, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open events: %w", err)
	}
	r, err := NewFileReader(name, f, maxLineBytes)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	r.closer = append(r.closer, f)
	return r, nil
}

// NewFileReader reads recorded events from src. name is what positions and
// reports call the file; a name ending in .gz makes the reader gunzip src.
// maxLineBytes <= 0 means DefaultMaxLineBytes. Closing the FileReader does
// not close src.
func NewFileReader(name string, src io.Reader, maxLineBytes int) (*FileReader, error) {
	if maxLineBytes <= 0 {
		maxLineBytes = DefaultMaxLineBytes
	}
	r := &FileReader{name: name, max: maxLineBytes}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, fmt.Errorf("open events %s: %w", name, err)
		}
		r.closer = append(r.closer, zr)
		src = zr
	}
	r.br = bufio.NewReaderSize(src, 64<<10)
	return r, nil
}

// Name returns the file name positions refer to.
func (r *FileReader) Name() string { return r.name }

// Next returns the next non-blank line without its line ending, and its
// 1-based line number. The bytes are valid only until the following call:
// callers that keep them must copy. At the end of the file Next returns
// io.EOF. A line over the limit gives a *LineError wrapping ErrLineTooLong,
// after which Next may be called again; any other error is fatal for the
// file.
func (r *FileReader) Next() ([]byte, int64, error) {
	for {
		b, err := r.readLine()
		if err != nil {
			return nil, r.line, err
		}
		if b == nil {
			return nil, r.line, io.EOF
		}
		b = trimLineEnd(b)
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		if len(b) > r.max {
			return nil, r.line, &LineError{
				File: r.name, Line: r.line,
				Err: fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, r.max),
			}
		}
		return b, r.line, nil
	}
}

// readLine returns the next raw line (with its ending) or nil at the end of
// input. Lines that fit in the bufio buffer are returned in place, without a
// copy; longer ones are assembled in r.long up to the limit and their excess
// is discarded, so that a runaway line cannot exhaust memory.
func (r *FileReader) readLine() ([]byte, error) {
	frag, err := r.br.ReadSlice('\n')
	switch {
	case err == nil:
		r.line++
		return frag, nil
	case errors.Is(err, io.EOF):
		if len(frag) == 0 {
			return nil, nil
		}
		r.line++
		return frag, nil
	case !errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("read events %s: %w", r.name, err)
	}
	r.line++
	// keep is one more byte than the limit (plus room for "\r\n") so that an
	// over-long line stays detectable after the excess is dropped.
	keep := r.max + 3
	r.long = append(r.long[:0], frag...)
	for {
		frag, err = r.br.ReadSlice('\n')
		if room := keep - len(r.long); room > 0 {
			r.long = append(r.long, frag[:min(room, len(frag))]...)
		}
		switch {
		case err == nil, errors.Is(err, io.EOF):
			return r.long, nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return nil, fmt.Errorf("read events %s: %w", r.name, err)
		}
	}
}

// Close releases the file (and the gzip reader).
func (r *FileReader) Close() error {
	var errs []error
	for i := len(r.closer) - 1; i >= 0; i-- {
		errs = append(errs, r.closer[i].Close())
	}
	r.closer = nil
	return errors.Join(errs...)
}

func trimLineEnd(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

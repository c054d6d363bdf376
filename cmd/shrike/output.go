package main

import (
	"fmt"
	"io"
	"sync"
	"text/tabwriter"
)

// output is a command's stdout or stderr. Like a bufio.Writer it keeps its
// first write error and fails every later write with it, so a command
// prints without checking each print, and the output stops at the first
// failure rather than going on with a hole in it: run checks stdout's
// error once the command returns, and a command whose stdout is a full
// disk or a closed pipe does not exit 0. fmt.Fprint* to an *output are
// exempt from errcheck for this reason (.golangci.yml); prints to an
// io.Writer stay checked, so the commands pass the *output itself.
type output struct {
	w io.Writer
	// mu makes an output as safe for concurrent writes as the file under
	// it: the replay's progress bar is drawn from its reading goroutine.
	mu  sync.Mutex
	err error
}

func newOutput(w io.Writer) *output { return &output{w: w} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	o.err = err
	return n, err
}

// Err returns the first error a write returned.
func (o *output) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// underlying returns the writer an *output writes to, and any other writer
// as it is: isTerminal asks about the file, not its wrapper.
func underlying(w io.Writer) io.Writer {
	if o, ok := w.(*output); ok {
		return o.w
	}
	return w
}

// table aligns columns on an output with text/tabwriter: cells end in a
// tab, rows in a newline. It keeps its first write error, returned by
// flush.
type table struct {
	tw  *tabwriter.Writer
	err error
}

func newTable(w *output) *table {
	return &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
}

// printf writes cells and rows.
func (t *table) printf(format string, args ...any) {
	if t.err == nil {
		_, t.err = fmt.Fprintf(t.tw, format, args...)
	}
}

// flush writes the table out and returns the first error.
func (t *table) flush() error {
	if t.err != nil {
		return t.err
	}
	return t.tw.Flush()
}

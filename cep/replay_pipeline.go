package cep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
)

// A replay has two halves. Decoding — envelope decoding, topic routing,
// rules.ParseEvent, the key and time expressions and Program.Prepare —
// depends on nothing but the line, so batches of lines can be decoded on
// any goroutine, in any order. Matching — Partition.Push, the alerts, the
// late and dead-letter outputs and the counters — depends on every line
// before it and writes to the caller's writers, so it stays on the calling
// goroutine, in line order. The split is at the matcher.Record because that
// is where the per-line work ends and the ordered work begins. Reading the
// lines (and gunzipping them) is in order too, but cheap: it is done under a
// lock by whichever goroutine is about to decode.
//
// A second goroutine decodes batches ahead of the matching; the matching
// goroutine decodes one itself whenever the batch it needs next is not ready
// (runPipelined). Decoding and matching cost about the same per event, but
// not batch by batch: with a dedicated decoder each side waited for the
// other about a sixth of the time, and sharing the decoding put that time to
// use (BENCHMARKS.md).
//
// The goroutines exchange batches of lines rather than lines, so that the
// hand-over (a lock, and now and then a goroutine wake-up) is paid once per
// few hundred lines, and a fixed set of batches circulates so that the
// steady state allocates nothing for the pipeline.

// batchesInFlight is how many batches circulate: one being matched, one or
// two being decoded, and the rest decoded and waiting, so that a short stall
// on either side does not stall the other.
const batchesInFlight = 4

func (r *replayer) newDecoder() *decoder {
	return &decoder{streams: r.streams, lanes: &r.lanes, records: records{pool: r.pool}}
}

// runSequential replays the files on the calling goroutine, each line
// decoded and matched before the next is read.
func (r *replayer) runSequential(ctx context.Context, readers []*FileReader) error {
	d := r.newDecoder()
	f := &feed{n: 1, readers: readers, sources: r.sources, finished: len(readers) == 0}
	var b batch
	for n := 0; f.read(&b); n++ {
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("replay: %w", err)
			}
		}
		d.decodeBatch(&b)
		if err := r.apply(&b); err != nil {
			return err
		}
	}
	return nil
}

// runPipelined replays the files with the matching on this goroutine and
// the decoding shared between a second goroutine and this one: batches of
// lines are read in order (under a lock) and numbered, decoded by whichever
// goroutine took them, and matched here in their order. The matching
// goroutine decodes a batch itself only when the next one to match is not
// ready, so it never waits while there is decoding it could do; the
// decoding goroutine waits only when every batch is in use, that is when it
// is ahead. On a 2-core machine the two rates then need not be equal for
// both cores to stay busy.
//
// It returns only after the second goroutine has ended, so that nothing of
// the replay outlives Replay: on an error or ctx ending it tells the
// decoder to stop, which the decoder notices before its next batch — after
// at most BatchLines lines, or when a blocked read returns, as the
// sequential replay would.
func (r *replayer) runPipelined(ctx context.Context, readers []*FileReader) (err error) {
	f := newFeed(readers, r.sources, r.opts.BatchLines)
	stop := make(chan struct{})
	done := make(chan struct{})
	var crash *decoderPanic
	go func() {
		defer close(done)
		// A panic while decoding (a bug, not bad input) would otherwise
		// kill the process from a goroutine no caller can recover on; it is
		// raised again on the caller's goroutine, as the sequential replay
		// raises it.
		defer func() {
			if p := recover(); p != nil {
				crash = &decoderPanic{value: p, stack: debug.Stack()}
			}
		}()
		if !r.opts.noDecodingGoroutine {
			f.decodeUntilDone(r.newDecoder(), stop)
		}
	}()
	defer func() {
		close(stop)
		<-done
		if crash != nil {
			panic(crash)
		}
	}()
	d := r.newDecoder()
	decoderDone := done
	for next := 0; ; {
		b := f.take(next)
		if b == nil {
			if f.exhausted(next) {
				return nil
			}
			if f.decodeOne(d) {
				continue
			}
			select {
			case <-f.published:
			case <-ctx.Done():
				return fmt.Errorf("replay: %w", ctx.Err())
			case <-decoderDone:
				if crash != nil {
					return nil // raised again by the defer
				}
				// It ran out of lines; what it took is published.
				decoderDone = nil
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		if err := r.apply(b); err != nil {
			return err
		}
		next++
		f.free <- b
	}
}

// feed is what the goroutines of a pipelined replay share: the readers,
// read in order under mu, and the batches.
type feed struct {
	n int // lines per batch

	mu       sync.Mutex
	readers  []*FileReader
	sources  []string // the readers' names in positions
	file     int      // index of the file being read
	seq      int      // number of the next batch to read
	finished bool     // every file read, or a read failed

	readyMu sync.Mutex
	// ready holds decoded batches until they are matched, at seq modulo
	// batchesInFlight: at most that many are out at once.
	ready [batchesInFlight]*batch
	// published signals that a batch was added to ready.
	published chan struct{}
	// free holds the batches nobody is using.
	free chan *batch
}

func newFeed(readers []*FileReader, sources []string, n int) *feed {
	f := &feed{
		n:         n,
		readers:   readers,
		sources:   sources,
		finished:  len(readers) == 0,
		published: make(chan struct{}, 1),
		free:      make(chan *batch, batchesInFlight),
	}
	for range batchesInFlight {
		f.free <- &batch{}
	}
	return f
}

// decodeUntilDone is the decoding goroutine: it reads and decodes batches
// until the files are read, a read fails, or stop is closed.
func (f *feed) decodeUntilDone(d *decoder, stop <-chan struct{}) {
	for {
		// Checked first because select picks at random: with batches
		// still free, a closed stop would otherwise be seen only by
		// chance.
		select {
		case <-stop:
			return
		default:
		}
		var b *batch
		select {
		case b = <-f.free:
		case <-stop:
			return
		}
		if !f.read(b) {
			return
		}
		d.decodeBatch(b)
		f.publish(b)
	}
}

// decodeOne reads and decodes a batch on the caller's goroutine if a batch
// is free and lines are left; it reports whether it did.
func (f *feed) decodeOne(d *decoder) bool {
	select {
	case b := <-f.free:
		if !f.read(b) {
			f.free <- b
			return false
		}
		d.decodeBatch(b)
		f.publish(b)
		return true
	default:
		return false
	}
}

// read fills b with the next lines of the current file, up to n, the end
// of the file (b.eof), or a failed read (b.err), and numbers it. It
// reports false, leaving b alone, when nothing is left to read.
func (f *feed) read(b *batch) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finished {
		return false
	}
	fr := f.readers[f.file]
	b.reset(fr.Name(), f.sources[f.file])
	b.seq = f.seq
	f.seq++
	for len(b.lines) < f.n && len(b.src) < maxBatchRaw {
		line, lineNo, err := fr.Next()
		if err != nil {
			var le *LineError
			if errors.As(err, &le) && !errors.Is(err, io.EOF) {
				b.lines = append(b.lines, srcLine{line: lineNo, err: le.Err})
				continue
			}
			if errors.Is(err, io.EOF) {
				b.eof = true
			} else {
				b.err = err
			}
			break
		}
		from := len(b.src)
		b.src = append(b.src, line...)
		b.lines = append(b.lines, srcLine{line: lineNo, from: from, to: len(b.src)})
	}
	if b.eof {
		f.file++
	}
	f.finished = b.err != nil || f.file == len(f.readers)
	return true
}

// publish hands a decoded batch to the matching goroutine.
func (f *feed) publish(b *batch) {
	f.readyMu.Lock()
	f.ready[b.seq%batchesInFlight] = b
	f.readyMu.Unlock()
	select {
	case f.published <- struct{}{}:
	default: // a signal is pending already
	}
}

// take returns batch seq if it is decoded, else nil.
func (f *feed) take(seq int) *batch {
	f.readyMu.Lock()
	defer f.readyMu.Unlock()
	b := f.ready[seq%batchesInFlight]
	if b == nil || b.seq != seq {
		return nil
	}
	f.ready[seq%batchesInFlight] = nil
	return b
}

// exhausted reports whether batch seq will never come: nothing is left to
// read and every batch before it was read.
func (f *feed) exhausted(seq int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finished && seq >= f.seq
}

// decodeBatch decodes the lines read into b.
func (d *decoder) decodeBatch(b *batch) {
	for _, l := range b.lines {
		if l.err != nil {
			b.items = append(b.items, item{line: l.line, dead: l.err})
			continue
		}
		d.decodeLine(b, l.line, b.src[l.from:l.to])
	}
}

// apply matches the lines of b in order and counts them. It returns the
// first write error, else b's read error after its lines.
func (r *replayer) apply(b *batch) error {
	for i := range b.items {
		it := &b.items[i]
		r.sum.Lines++
		if it.unrouted {
			r.sum.Unrouted++
			continue
		}
		if it.from < it.to {
			r.curSeq++
			pushed := false
			for _, p := range b.pushes[it.from:it.to] {
				if it.rawTo > it.rawFrom {
					r.cur = b.raw[it.rawFrom:it.rawTo]
				} else {
					r.cur = p.rec.Event.Raw()
				}
				r.curRec = p.rec
				part := p.s.part
				if it.lane != 0 {
					var err error
					if part, err = r.lanePartition(p.s, it.lane); err != nil {
						return err
					}
				}
				// As the engine keeps events too far ahead of the wall
				// clock from the watermark, a replay, which has no wall
				// clock of its own, keeps those too far ahead of the
				// watermark.
				if err := tooFarAhead(p.s, p.rec.Time, part.Watermark(), "watermark", r.opts.MaxClockSkew); err != nil {
					if it.dead == nil {
						it.dead = err
					}
					continue
				}
				part.Push(p.rec)
				pushed = true
			}
			r.cur, r.curRec = nil, nil
			if pushed {
				r.sum.Events++
			}
		}
		if it.dead != nil {
			// A line that one stream could not key or time is lost to that
			// stream's rules: it counts as dead-lettered even when another
			// stream took it.
			r.deadLetter(b.file, it.line, it.dead)
		}
		if r.werr != nil {
			return r.werr
		}
	}
	if b.err != nil {
		return b.err
	}
	if b.eof {
		r.sum.Files++
	}
	return nil
}

// decoderPanic is a panic of the decoding goroutine, raised again on the
// caller's with the stack where it happened.
type decoderPanic struct {
	value any
	stack []byte
}

// Error prints the value and the stack, which a re-raised panic would
// otherwise lose; errors.As still finds an error value through Unwrap.
func (p *decoderPanic) Error() string {
	return fmt.Sprintf("replay decoder: %v\n\n%s", p.value, p.stack)
}

func (p *decoderPanic) Unwrap() error {
	err, _ := p.value.(error)
	return err
}

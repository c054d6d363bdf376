package cep

import (
	"context"
	"fmt"
	"runtime/debug"
)

// A replay has two halves. Decoding — reading and gunzipping lines, envelope
// decoding, topic routing, rules.ParseEvent and the key and time expressions
// — depends on nothing but the line, so it can run ahead on a goroutine of
// its own. Matching — Partition.Push, the alerts, the late and dead-letter
// outputs and the counters — depends on every line before it and writes to
// the caller's writers, so it stays on the calling goroutine, in line order.
// The split is at the matcher.Record because that is where the per-line work
// ends and the ordered work begins; on a 2-core machine the decoding (about
// a third of the CPU) then overlaps the matching instead of adding to it.
//
// The halves exchange batches of lines rather than lines, so that the
// hand-over (a channel operation and a goroutine wake-up) is paid once per
// few hundred lines, and a fixed set of batches circulates between them so
// that the steady state allocates nothing for the pipeline.

// batchesInFlight is how many batches circulate: one being filled, one being
// applied, and two queued so that a short stall on either side does not
// stall the other.
const batchesInFlight = 4

func (r *replayer) newDecoder() *decoder {
	return &decoder{streams: r.streams}
}

// runSequential replays the files on the calling goroutine, each line
// decoded and matched before the next is read.
func (r *replayer) runSequential(ctx context.Context, readers []*FileReader) error {
	d := r.newDecoder()
	var b batch
	for _, fr := range readers {
		for n := 0; ; n++ {
			if n&1023 == 0 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("replay: %w", err)
				}
			}
			b.reset(fr.Name())
			d.fill(&b, fr, 1)
			if err := r.apply(&b); err != nil {
				return err
			}
			if b.eof {
				break
			}
		}
	}
	return nil
}

// runPipelined replays the files with the decoding on a second goroutine
// and the matching on this one. It returns only after the second goroutine
// has ended, so that nothing of the replay outlives Replay: on an error or
// ctx ending it tells the decoder to stop, which the decoder notices before
// its next batch — after at most BatchLines lines, or when a blocked read
// returns, as the sequential replay would.
func (r *replayer) runPipelined(ctx context.Context, readers []*FileReader) (err error) {
	// full never blocks the decoder, as it has room for every batch; free
	// is where the decoder waits when it is batchesInFlight batches ahead.
	full := make(chan *batch, batchesInFlight)
	free := make(chan *batch, batchesInFlight)
	for range batchesInFlight {
		free <- &batch{}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	var crash *decoderPanic
	d := r.newDecoder()
	go func() {
		defer close(done)
		defer close(full)
		// A panic while decoding (a bug, not bad input) would otherwise
		// kill the process from a goroutine no caller can recover on; it is
		// raised again on the caller's goroutine, as the sequential replay
		// raises it.
		defer func() {
			if p := recover(); p != nil {
				crash = &decoderPanic{value: p, stack: debug.Stack()}
			}
		}()
		d.run(readers, r.opts.BatchLines, free, full, stop)
	}()
	defer func() {
		close(stop)
		<-done
		if crash != nil {
			panic(crash)
		}
	}()
	for {
		var b *batch
		select {
		case b = <-full:
		case <-ctx.Done():
			return fmt.Errorf("replay: %w", ctx.Err())
		}
		if b == nil {
			return nil // the decoder finished (or crashed: see the defer)
		}
		// select picks at random among ready cases: a batch that came with
		// ctx already done is not applied.
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		if err := r.apply(b); err != nil {
			return err
		}
		free <- b
	}
}

// run fills batches from the readers in turn and hands them over on full
// until the files are read, a read fails, or stop is closed.
func (d *decoder) run(readers []*FileReader, n int, free <-chan *batch, full chan<- *batch, stop <-chan struct{}) {
	for _, fr := range readers {
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
			case b = <-free:
			case <-stop:
				return
			}
			b.reset(fr.Name())
			d.fill(b, fr, n)
			// Once sent, b belongs to the replayer until it comes back on
			// free: what decides the next step is read before.
			eof, failed := b.eof, b.err != nil
			select {
			case full <- b:
			case <-stop:
				return
			}
			if failed {
				return
			}
			if eof {
				break
			}
		}
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
			for _, p := range b.pushes[it.from:it.to] {
				if it.rawTo > it.rawFrom {
					r.cur = b.raw[it.rawFrom:it.rawTo]
				} else {
					r.cur = p.rec.Event.Raw()
				}
				r.curRec = p.rec
				p.s.part.Push(p.rec)
			}
			r.cur, r.curRec = nil, nil
			r.sum.Events++
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

package feed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/alertdiff"
	"github.com/shrike-cep/shrike/matcher"
)

// DefaultMaxShadowDiffAlerts bounds the alerts one ShadowDiff reads of
// each topic: about a second of CPU and tens of MB at most, for a
// comparison that is asked for by hand.
const DefaultMaxShadowDiffAlerts = 1_000_000

// ErrTooManyAlerts is ShadowDiff's answer when a topic holds more alerts
// since the shadow started than it reads in one call.
var ErrTooManyAlerts = errors.New("too many alerts to compare")

// ShadowDiffOptions configure NewShadowDiffer.
type ShadowDiffOptions struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// AlertsTopic and ShadowAlertsTopic are the engine's
	// (cep.EngineOptions). Required.
	AlertsTopic, ShadowAlertsTopic string
	// ReadCommitted reads the alerts of committed transactions only, as
	// AlertFeedOptions.ReadCommitted.
	ReadCommitted bool
	// MaxAlerts bounds the records read of each topic per call. Default
	// DefaultMaxShadowDiffAlerts.
	MaxAlerts int
	// Logger receives rare operational messages. Default: discard.
	Logger *slog.Logger
	// ExtraKafka are further franz-go options (TLS, SASL), applied last.
	ExtraKafka []kgo.Opt
}

// ShadowDiffer compares what the live and the shadow version of a ruleset
// alerted on, from the alerts topics: it sees the alerts of every
// instance, whichever partitions each owns, and keeps nothing between
// calls.
type ShadowDiffer struct {
	opts ShadowDiffOptions
}

// NewShadowDiffer checks opts.
func NewShadowDiffer(opts ShadowDiffOptions) (*ShadowDiffer, error) {
	if len(opts.Brokers) == 0 || opts.AlertsTopic == "" || opts.ShadowAlertsTopic == "" {
		return nil, errors.New("shadow differ: brokers and both alerts topics are required")
	}
	if opts.MaxAlerts <= 0 {
		opts.MaxAlerts = DefaultMaxShadowDiffAlerts
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &ShadowDiffer{opts: opts}, nil
}

// ShadowDiff compares the alerts of ruleset written to the alerts topic
// (alertdiff.Old: the live version) and to the shadow alerts topic
// (alertdiff.New) at or after since, by rule, key and matched events. It
// reads both topics from the first record at or after since to their ends
// as they are when it starts. An alert too large for a record and written
// shrunk (its events replaced by their positions) differs from its
// counterpart of the other version unless both were shrunk.
func (d *ShadowDiffer) ShadowDiff(ctx context.Context, ruleset string, since time.Time, examples int) (*alertdiff.Diff, error) {
	diff := alertdiff.NewDiff(alertdiff.Options{Examples: examples})
	for _, side := range []struct {
		side  alertdiff.Side
		topic string
	}{{alertdiff.Old, d.opts.AlertsTopic}, {alertdiff.New, d.opts.ShadowAlertsTopic}} {
		err := d.read(ctx, side.topic, since, func(a *matcher.Alert) {
			if a.Ruleset == ruleset {
				diff.Add(side.side, a)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", side.topic, err)
		}
	}
	return diff, nil
}

// read hands add the alerts of topic from since to the topic's end as
// it is when read starts. It reads with the feed's replay reader, one
// partition at a time, which steps over control records and aborted
// transactions as a read_committed consumer does.
func (d *ShadowDiffer) read(ctx context.Context, topic string, since time.Time, add func(*matcher.Alert)) error {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(d.opts.Brokers...),
		kgo.ClientID("shrike-shadow-diff"),
	}, d.opts.ExtraKafka...)
	rr, err := newReplayReader(opts, topic, d.opts.ReadCommitted, 1, 0)
	if err != nil {
		return err
	}
	defer rr.close()
	starts, err := rr.adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), topic)
	if err != nil {
		return fmt.Errorf("list offsets after %s: %w", since.Format(time.RFC3339), err)
	}
	listEnds := rr.adm.ListEndOffsets
	if d.opts.ReadCommitted {
		listEnds = rr.adm.ListCommittedOffsets
	}
	ends, err := listEnds(ctx, topic)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	type span struct {
		part     int32
		from, to int64
	}
	var spans []span
	total := int64(0)
	ends.Each(func(e kadm.ListedOffset) {
		if e.Err != nil || e.Topic != topic {
			return
		}
		s, ok := starts.Lookup(topic, e.Partition)
		if !ok || s.Err != nil || s.Offset < 0 || s.Offset >= e.Offset {
			return
		}
		spans = append(spans, span{e.Partition, s.Offset, e.Offset})
		total += e.Offset - s.Offset
	})
	if total > int64(d.opts.MaxAlerts) {
		return fmt.Errorf("%w: %d records since %s, more than the %d one comparison reads: delete the shadow and put it again to start a new comparison",
			ErrTooManyAlerts, total, since.Format(time.RFC3339), d.opts.MaxAlerts)
	}
	for _, sp := range spans {
		for off := sp.from; off < sp.to; {
			c, err := rr.read(ctx, sp.part, off)
			if err != nil {
				return fmt.Errorf("partition %d at offset %d: %w", sp.part, off, err)
			}
			for _, r := range c.recs {
				if r.off >= off && r.off < sp.to && r.fa.Alert != nil {
					add(r.fa.Alert)
				}
			}
			if c.next <= off {
				// Nothing readable at off below the end listed: the end
				// moved back (the topic was recreated). Stop here.
				d.opts.Logger.Warn("shadow diff: a partition ended before its listed end",
					"topic", topic, "partition", sp.part, "offset", off, "end", sp.to)
				break
			}
			off = c.next
		}
	}
	return nil
}

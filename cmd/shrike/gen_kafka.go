package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
)

// genKeyFields is each stream's natural key: the field its example
// ruleset keys on, so that a key's events land in one partition, in order,
// as a real producer would send them.
var genKeyFields = map[string]string{
	gen.StreamPayments:        "account_id",
	gen.StreamAccountSecurity: "user_id",
	gen.StreamITOps:           "service",
}

// genToKafka produces g's events to Kafka and reports the throughput.
func genToKafka(ctx context.Context, e env, g *gen.Generator, f genFlags) error {
	topic := f.topic
	if topic == "" {
		topic = f.scenario
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	pub, err := feed.NewPublisher(pctx, feed.PublisherOptions{Brokers: f.kafka, ClientID: "shrike-gen"})
	cancel()
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	defer pub.Close()
	start := time.Now()
	sent, err := produceEvents(ctx, g, pub, topic, genKeyFields[f.scenario])
	// Deliver what was queued even after an interrupt, within a bound.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), feed.DefaultDeliveryTimeout)
	if ferr := pub.Flush(fctx); err == nil {
		err = ferr
	}
	cancel()
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("gen: %d of %d events delivered: %w", pub.Acked(), sent, err)
	}
	if !f.quiet {
		dest := fmt.Sprintf("kafka topic %s at %s", topic, strings.Join(f.kafka, ","))
		printGenSummary(e.stderr, g, sent, dest)
		fmt.Fprintf(e.stderr, "produced in %v: %.0f events/s\n", roundDuration(elapsed), float64(sent)/max(elapsed.Seconds(), 1e-9))
	}
	return nil
}

// produceEvents queues every event of g, keyed by keyField, and returns
// how many it queued. The generator reuses its line buffer, so each event
// is copied: the client holds it until the broker acknowledges it.
func produceEvents(ctx context.Context, g *gen.Generator, pub *feed.Publisher, topic, keyField string) (int, error) {
	n := 0
	for {
		line, ok := g.Next()
		if !ok {
			return n, nil
		}
		value := bytes.Clone(line)
		if err := pub.Publish(ctx, topic, eventKey(value, keyField), value); err != nil {
			return n, err
		}
		n++
	}
}

// eventKey returns the string field keyField of a generated event, or nil
// (the producer then spreads events over partitions).
func eventKey(line []byte, keyField string) []byte {
	if keyField == "" {
		return nil
	}
	ev, err := rules.ParseEvent(line)
	if err != nil {
		return nil
	}
	v, ok := ev.Field(keyField)
	if !ok {
		return nil
	}
	s, ok := v.Value().(string)
	if !ok {
		return nil
	}
	return []byte(s)
}

package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
	"github.com/shrike-cep/shrike/feed"
	"github.com/shrike-cep/shrike/rules"
)

// Publisher is what the event service needs of a Kafka producer
// (feed.Publisher).
type Publisher interface {
	PublishBatch(ctx context.Context, topic string, keys, values [][]byte) (int, error)
}

// eventService implements shrikev1.EventServiceServer.
type eventService struct {
	shrikev1.UnimplementedEventServiceServer
	s *Server

	// topics caches the topics the stored rulesets read. A topic missing
	// from it is looked up again in the registry, so that a ruleset
	// uploaded a moment ago is found; a present one stays valid until the
	// next miss refreshes the set, which at worst lets a publish through to
	// a topic whose ruleset was just deleted.
	mu     sync.Mutex
	topics []string
}

func (e *eventService) PublishEvents(ctx context.Context, req *shrikev1.PublishEventsRequest) (*shrikev1.PublishEventsResponse, error) {
	if req.GetTopic() == "" {
		return nil, badField("topic", "required: the topic of a stored ruleset")
	}
	if len(req.GetEvents()) == 0 {
		return nil, badField("events", "at least one event")
	}
	keys := make([][]byte, len(req.GetEvents()))
	values := make([][]byte, len(req.GetEvents()))
	for i, ev := range req.GetEvents() {
		v, err := eventJSON(ev)
		if err != nil {
			return nil, badField(fmt.Sprintf("events[%d].%s", i, eventField(ev)), "%v", err)
		}
		if ev.GetKey() != "" {
			keys[i] = []byte(ev.GetKey())
		}
		values[i] = v
	}
	read, err := e.topicRead(ctx, req.GetTopic())
	if err != nil {
		return nil, err
	}
	if !read {
		return nil, withMeta(errTopicNotRead, "topic", req.GetTopic())
	}
	n, err := e.s.publisher.PublishBatch(ctx, req.GetTopic(), keys, values)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, publishErr(err, n, len(values))
	}
	return &shrikev1.PublishEventsResponse{PublishedCount: int64(n)}, nil
}

// publishErr maps a failed PublishBatch. An event Kafka does not take
// because of its size is the caller's to fix: INVALID_ARGUMENT at
// events[i], never UNAVAILABLE, which clients retry for ever. Either way
// the ErrorInfo says which events were written all the same (metadata
// "published_count", and "published": their indexes as ranges, "0-2,4"),
// so that a client retries only the others.
func publishErr(err error, n, total int) error {
	var be *feed.BatchError
	if !errors.As(err, &be) {
		return unavailable("kafka", fmt.Errorf("%d of %d events acknowledged: %w", n, total, err))
	}
	meta := []string{"published_count", strconv.Itoa(len(be.Published)), "event_index", strconv.Itoa(be.Index)}
	if len(be.Published) > 0 {
		meta = append(meta, "published", indexRanges(be.Published))
	}
	if len(be.Key) > 0 {
		meta = append(meta, "key", shortKey(be.Key))
	}
	if !errors.Is(err, feed.ErrRecordTooLarge) {
		return withMeta(unavailable("kafka", fmt.Errorf("%d of %d events acknowledged: %w", n, total, err)), meta...)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "event")
	if len(be.Key) > 0 {
		fmt.Fprintf(&b, " with key %q", shortKey(be.Key))
	}
	fmt.Fprintf(&b, " is %d bytes (key and value)", be.Size)
	if be.Limit > 0 {
		fmt.Fprintf(&b, ", over the %d bytes Kafka takes for a record of topic %s", be.Limit, be.Topic)
	} else {
		fmt.Fprintf(&b, ", more than Kafka takes for a record of topic %s", be.Topic)
	}
	if len(be.Published) == 0 {
		b.WriteString("; no event of the request was published")
	} else {
		fmt.Fprintf(&b, "; events %s were published all the same: send only the others again", indexRanges(be.Published))
	}
	return withMeta(badField(fmt.Sprintf("events[%d]", be.Index), "%s", b.String()), meta...)
}

// indexRanges writes ascending indexes as ranges: "0-2,4".
func indexRanges(idx []int) string {
	var b strings.Builder
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(idx[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(idx[j]))
		}
		i = j + 1
	}
	return b.String()
}

// shortKey keeps a key in an error readable whatever its size: its first
// 64 bytes, cut at a character boundary.
func shortKey(k []byte) string {
	const most = 64
	if len(k) <= most {
		return string(k)
	}
	cut := most
	for cut > 0 && !utf8.RuneStart(k[cut]) {
		cut--
	}
	return string(k[:cut]) + "…"
}

func eventField(ev *shrikev1.Event) string {
	if _, ok := ev.GetPayload().(*shrikev1.Event_RawJson); ok {
		return "raw_json"
	}
	return "value"
}

// eventJSON returns the event's JSON object: raw_json byte for byte, or
// the value re-encoded.
func eventJSON(ev *shrikev1.Event) ([]byte, error) {
	switch p := ev.GetPayload().(type) {
	case *shrikev1.Event_RawJson:
		raw := []byte(p.RawJson)
		if _, err := rules.ParseEvent(raw); err != nil {
			if errors.Is(err, rules.ErrBadValue) {
				return nil, err // an object, but one no alert could carry
			}
			return nil, fmt.Errorf("not one JSON object: %w", err)
		}
		return raw, nil
	case *shrikev1.Event_Value:
		if p.Value == nil {
			return nil, fmt.Errorf("missing")
		}
		b, err := protojson.Marshal(p.Value)
		if err != nil {
			return nil, err
		}
		// protojson's output is not stable across runs (it adds spaces at
		// random); compact it so that equal events are equal bytes.
		return compactJSON(b)
	}
	return nil, fmt.Errorf("give value (a JSON object) or raw_json")
}

func compactJSON(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// topicRead reports whether a stored ruleset reads topic.
func (e *eventService) topicRead(ctx context.Context, topic string) (bool, error) {
	e.mu.Lock()
	hit := slices.Contains(e.topics, topic)
	e.mu.Unlock()
	if hit {
		return true, nil
	}
	topics, err := e.storedTopics(ctx)
	if err != nil {
		return false, err
	}
	e.mu.Lock()
	e.topics = topics
	e.mu.Unlock()
	return slices.Contains(topics, topic), nil
}

// storedTopics lists the topics of the current rulesets of the registry.
func (e *eventService) storedTopics(ctx context.Context) ([]string, error) {
	var topics []string
	tok := ""
	for {
		recs, next, err := e.s.registry.List(ctx, MaxPageSize, tok)
		if err != nil {
			return nil, registryErr(err)
		}
		for _, rec := range recs {
			if t := e.s.summaries.get(rec).topic; t != "" && !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
		if next == "" {
			return topics, nil
		}
		tok = next
	}
}

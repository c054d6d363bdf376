package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shrikev1 "github.com/shrike-cep/shrike/api/shrike/v1"
)

// publishedIndexes reads every record of the payments topic and returns
// the "i" field of their values, sorted.
func publishedIndexes(t *testing.T, brokers []string) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, "payments")
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("payments"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []int
	for n := int64(0); n < want; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records of payments: %v", n, want, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			n++
			var v struct {
				I int `json:"i"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("record %s: %v", r.Value, err)
			}
			got = append(got, v.I)
		})
	}
	slices.Sort(got)
	return got
}

// event is the REST body of event i of key, with pad bytes of incompressible
// padding.
func event(i int, key string, pad int) map[string]any {
	b := make([]byte, pad/2)
	_, _ = rand.Read(b)
	return map[string]any{"key": key, "value": map[string]any{
		"i": i, "account_id": key, "amount": 1, "pad": hex.EncodeToString(b),
		"ts": time.Date(2026, 11, 20, 10, 0, i, 0, time.UTC).Format(time.RFC3339),
	}}
}

// errorInfo returns the ErrorInfo metadata of a gRPC error.
func errorInfo(err error) map[string]string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetMetadata()
		}
	}
	return nil
}

// TestPublishEventsTooLarge: an event larger than the producer takes is
// refused as the caller's error (400, never 503, which clients retry for
// ever), at its index and with its key, before any event of the request is
// produced, so that a retry duplicates nothing.
func TestPublishEventsTooLarge(t *testing.T) {
	e := newEnv(t, envOptions{publisher: []kgo.Opt{kgo.ProducerBatchMaxBytes(4096)}})
	e.put(t, "payments", paymentsSrc)

	body := map[string]any{"topic": "payments", "events": []any{
		event(0, "a1", 10), event(1, "big-key", 8000), event(2, "a2", 10),
	}}
	code, resp := e.rest(t, "POST", "/v1/events:publish", body)
	got := restStatus(code, resp)
	if !strings.HasPrefix(got, `400 INVALID_REQUEST [events[1]: event with key "big-key" is `) || !strings.Contains(got, "no event of the request was published") {
		t.Errorf("REST: got %s, want 400 INVALID_REQUEST at events[1] naming the key, nothing published", got)
	}
	_, err := e.events().PublishEvents(e.ctx(t), &shrikev1.PublishEventsRequest{Topic: "payments", Events: []*shrikev1.Event{
		{Key: "a1", Payload: &shrikev1.Event_RawJson{RawJson: `{"i": 0}`}},
		{Key: "big-key", Payload: &shrikev1.Event_RawJson{RawJson: `{"i": 1, "pad": "` + strings.Repeat("x", 5000) + `"}`}},
	}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("gRPC: %v, want INVALID_ARGUMENT", err)
	}
	if m := errorInfo(err); m["event_index"] != "1" || m["key"] != "big-key" || m["published_count"] != "0" {
		t.Errorf("gRPC ErrorInfo metadata %v, want event_index 1, key big-key, published_count 0", m)
	}
	if got := publishedIndexes(t, e.brokers); len(got) != 0 {
		t.Errorf("events %v of refused requests reached the topic", got)
	}
	// Within the limit, all goes through.
	if code, resp := e.rest(t, "POST", "/v1/events:publish", map[string]any{"topic": "payments", "events": []any{event(3, "a1", 1000)}}); code != 200 {
		t.Errorf("an event within the limit: %s", restStatus(code, resp))
	}
}

// TestPublishEventsRefusedByBroker: when the broker refuses a record as
// too large although the publisher's limit let it through (the topic's
// max.message.bytes shrank after it was read), the answer is 400 at that
// event and says which events of the batch were written all the same (the
// other partitions'), so that a client sends only the others again.
func TestPublishEventsRefusedByBroker(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.put(t, "payments", paymentsSrc)
	// A first publish: the publisher reads the topic's limit (1 MB).
	if code, resp := e.rest(t, "POST", "/v1/events:publish", map[string]any{"topic": "payments", "events": []any{event(100, "a0", 10)}}); code != 200 {
		t.Fatalf("first publish: %s", restStatus(code, resp))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v := "2048"
	rs, err := kadm.NewClient(cl).AlterTopicConfigs(e.ctx(t), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &v}}, "payments")
	if err == nil {
		err = rs[0].Err
	}
	if err != nil {
		t.Fatal(err)
	}

	var evs []any
	for i := range 12 {
		pad := 10
		if i == 5 {
			pad = 6000
		}
		evs = append(evs, event(i, "k"+strconv.Itoa(i), pad))
	}
	code, resp := e.rest(t, "POST", "/v1/events:publish", map[string]any{"topic": "payments", "events": evs})
	got := restStatus(code, resp)
	if code != 400 || !strings.Contains(got, "INVALID_REQUEST [events[") {
		t.Fatalf("got %s, want 400 INVALID_REQUEST at an event", got)
	}
	meta := map[string]string{}
	for _, d := range resp["details"].([]any) {
		if m, ok := d.(map[string]any)["metadata"].(map[string]any); ok {
			for k, v := range m {
				meta[k] = fmt.Sprint(v)
			}
		}
	}
	// What the topic holds of this batch is what the answer says was
	// published.
	var onTopic []int
	for _, i := range publishedIndexes(t, e.brokers) {
		if i < 100 {
			onTopic = append(onTopic, i)
		}
	}
	if len(onTopic) == 0 || len(onTopic) == 12 {
		t.Fatalf("%d of 12 events on the topic: want the other partitions' only", len(onTopic))
	}
	if slices.Contains(onTopic, 5) {
		t.Errorf("the refused event 5 is on the topic")
	}
	if meta["published_count"] != strconv.Itoa(len(onTopic)) {
		t.Errorf("published_count %q, want %d", meta["published_count"], len(onTopic))
	}
	if diff := cmp.Diff(onTopic, expand(t, meta["published"])); diff != "" {
		t.Errorf("published %q differs from the topic (-topic +answer):\n%s\n%s", meta["published"], diff, got)
	}
	t.Logf("answer: %s", got)
}

// expand reads "0-2,4" back.
func expand(t *testing.T, s string) []int {
	t.Helper()
	var out []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, ok := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			t.Fatalf("published %q: %v", s, err)
		}
		b := a
		if ok {
			if b, err = strconv.Atoi(hi); err != nil {
				t.Fatalf("published %q: %v", s, err)
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out
}

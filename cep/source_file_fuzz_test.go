package cep

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeLine checks the line decoder against encoding/json: it never
// panics, a line is an envelope exactly when it is a JSON object with a
// string "topic" and a string or null "payload", and the topic, key and
// payload it extracts are what encoding/json decodes.
func FuzzDecodeLine(f *testing.F) {
	for _, s := range []string{
		`{"type":"login","account_id":"a1","ts":1}`,
		`{"topic":"payments","partition":0,"offset":1,"tstype":"create","ts":1700000000000,"broker":0,"key":"a1","payload":"{\"type\":\"login\"}"}`,
		`{"topic":"t","key":null,"payload":"{\"s\":\"\\u00e9\\\"\"}"}`,
		`{"topic":"t","payload":null}`,
		`{"t\u006fpic":"t","p\u0061yload":"\ud83d\ude00"}`,
		`{"topic":"t","payload":{"nested":["payload"]}}`,
		`{"topic":"t","payload":"x`,
		`["payload"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		var d LineDecoder
		var got Line
		err := d.Decode(line, &got)
		if !bytes.Equal(line, orig) {
			t.Fatalf("Decode modified its input")
		}
		if err != nil && !errors.Is(err, ErrTombstone) {
			t.Fatalf("Decode: unexpected error %v", err)
		}
		if !got.Envelope {
			if err != nil || !bytes.Equal(got.Event, line) {
				t.Fatalf("non-envelope: Event %q, err %v; want the line itself", got.Event, err)
			}
		}
		if !json.Valid(line) || !utf8.Valid(line) {
			return
		}
		var members map[string]json.RawMessage
		if json.Unmarshal(line, &members) != nil {
			// Valid JSON that is not an object is never an envelope.
			if got.Envelope {
				t.Fatalf("non-object decoded as an envelope")
			}
			return
		}
		var topic string
		topicOK := json.Unmarshal(members["topic"], &topic) == nil && isJSONString(members["topic"])
		payloadNull := string(members["payload"]) == "null"
		var payload string
		payloadOK := isJSONString(members["payload"]) && json.Unmarshal(members["payload"], &payload) == nil
		wantEnvelope := topicOK && (payloadOK || payloadNull)
		if got.Envelope != wantEnvelope {
			t.Fatalf("Envelope = %v, want %v", got.Envelope, wantEnvelope)
		}
		if !wantEnvelope {
			return
		}
		if string(got.Topic) != topic {
			t.Errorf("Topic = %q, want %q", got.Topic, topic)
		}
		if payloadNull {
			if !errors.Is(err, ErrTombstone) {
				t.Errorf("null payload: err = %v, want ErrTombstone", err)
			}
		} else if string(got.Event) != payload {
			t.Errorf("Event = %q, want %q", got.Event, payload)
		}
		var key string
		if isJSONString(members["key"]) && json.Unmarshal(members["key"], &key) == nil {
			if !got.HasKey || string(got.Key) != key {
				t.Errorf("Key = %q (HasKey %v), want %q", got.Key, got.HasKey, key)
			}
		} else if got.HasKey {
			t.Errorf("HasKey with key member %s", members["key"])
		}
	})
}

func isJSONString(v json.RawMessage) bool { return len(v) > 0 && v[0] == '"' }

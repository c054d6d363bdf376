package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/internal/embedded"
)

func TestGenKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	k, err := embedded.NewKafka(ctx, embedded.KafkaOptions{Topics: []string{"payments", "logins"}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	broker := k.Addrs()[0]

	tests := []struct {
		name, scenario, topic, keyField string
	}{
		{name: "default topic is the scenario", scenario: "payments", topic: "payments", keyField: "account_id"},
		{name: "named topic", scenario: "account_security", topic: "logins", keyField: "user_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"gen", "--scenario", tt.scenario, "--events", "300", "--seed", "3"}
			var want, stderr bytes.Buffer
			if code := run(ctx, args, env{stdout: newOutput(&want), stderr: newOutput(&stderr), clock: time.Now}); code != 0 {
				t.Fatalf("gen to stdout: exit %d: %s", code, stderr.String())
			}
			kargs := append(args, "--kafka", broker)
			if tt.topic != tt.scenario {
				kargs = append(kargs, "--topic", tt.topic)
			}
			stderr.Reset()
			var stdout bytes.Buffer
			if code := run(ctx, kargs, env{stdout: newOutput(&stdout), stderr: newOutput(&stderr), clock: time.Now}); code != 0 {
				t.Fatalf("gen --kafka: exit %d: %s", code, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("gen --kafka wrote %d bytes to stdout, want none", stdout.Len())
			}
			for _, s := range []string{"300 " + tt.scenario + " events to kafka topic " + tt.topic + " at " + broker, "events/s"} {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("summary %q does not say %q", stderr.String(), s)
				}
			}
			recs := consumeAll(ctx, t, broker, tt.topic, 300)
			// The same events as on stdout, each key's in order, each keyed
			// by its natural key.
			byKey := map[string][]string{}
			for _, line := range strings.Split(strings.TrimSpace(want.String()), "\n") {
				k := string(eventKey([]byte(line), tt.keyField))
				if k == "" {
					t.Fatalf("generated line without %s: %s", tt.keyField, line)
				}
				byKey[k] = append(byKey[k], line)
			}
			gotByKey := map[string][]string{}
			for _, r := range recs {
				gotByKey[string(r.Key)] = append(gotByKey[string(r.Key)], string(r.Value))
			}
			if diff := cmp.Diff(byKey, gotByKey); diff != "" {
				t.Errorf("records by key (-stdout +kafka):\n%s", diff)
			}
		})
	}
}

func TestGenKafkaUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "kafka and out", args: []string{"--kafka", "127.0.0.1:1", "--out", "x.jsonl"}, want: "--kafka and --out exclude each other"},
		{name: "topic without kafka", args: []string{"--topic", "x"}, want: "--topic needs --kafka"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(t.Context(), append([]string{"gen", "--scenario", "payments"}, tt.args...), env{stdout: newOutput(&bytes.Buffer{}), stderr: newOutput(&stderr), clock: time.Now})
			if code != 2 || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tt.want)
			}
		})
	}
}

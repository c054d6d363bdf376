package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/internal/testkit"
)

// secureBackends are a Kafka (kfake) that speaks only TLS and requires
// SASL SCRAM-SHA-512, and a redis-server that speaks only TLS, requires a
// client certificate and authenticates an ACL user; with the files serve
// needs to reach them.
type secureBackends struct {
	broker string
	kafka  *testkit.PKI
	redis  *testkit.RedisTLS
	dir    string
	// kafkaOpts are a test client's options to reach the broker.
	kafkaOpts []kgo.Opt
}

func startSecureBackends(t *testing.T) *secureBackends {
	t.Helper()
	dir := t.TempDir()
	b := &secureBackends{dir: dir, redis: testkit.StartRedisTLS(t, dir, [2]string{"shrike", "s3cret-redis"})}
	b.kafka = testkit.NewPKI(t, dir, "kafka")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "payments"), kfake.AllowAutoTopicCreation(),
		kfake.TLS(b.kafka.ServerTLS(false)), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "alice", "s3cret-kafka"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	b.broker = c.ListenAddrs()[0]
	b.kafkaOpts = []kgo.Opt{
		kgo.DialTLSConfig(&tls.Config{RootCAs: b.kafka.Pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: "alice", Pass: "s3cret-kafka"}.AsSha512Mechanism()),
	}
	writeFile(t, filepath.Join(dir, "kafka.pass"), "s3cret-kafka\n")
	writeFile(t, filepath.Join(dir, "redis.pass"), "s3cret-redis\n")
	writeFile(t, filepath.Join(dir, "wrong.pass"), "looking-glass\n")
	src, err := os.ReadFile("../../rulesets/payments.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "rules", "payments.yaml"), string(src))
	return b
}

// environ is serve's whole configuration as SHRIKE_* variables, with
// over replacing or adding some.
func (b *secureBackends) environ(over ...string) []string {
	env := map[string]string{
		"SHRIKE_KAFKA_BROKERS":             b.broker,
		"SHRIKE_KAFKA_TLS_CA_FILE":         b.kafka.CAFile,
		"SHRIKE_KAFKA_SASL_MECHANISM":      "scram-sha-512",
		"SHRIKE_KAFKA_SASL_USERNAME":       "alice",
		"SHRIKE_KAFKA_SASL_PASSWORD_FILE":  filepath.Join(b.dir, "kafka.pass"),
		"SHRIKE_REDIS_ADDRS":               b.redis.Addr,
		"SHRIKE_REDIS_USERNAME":            "shrike",
		"SHRIKE_REDIS_PASSWORD_FILE":       filepath.Join(b.dir, "redis.pass"),
		"SHRIKE_REDIS_TLS_CA_FILE":         b.redis.PKI.CAFile,
		"SHRIKE_REDIS_TLS_CERT_FILE":       b.redis.PKI.ClientCertFile,
		"SHRIKE_REDIS_TLS_KEY_FILE":        b.redis.PKI.ClientKeyFile,
		"SHRIKE_REDIS_KEY_PREFIX":          "secure-test",
		"SHRIKE_RULES_DIR":                 filepath.Join(b.dir, "rules"),
		"SHRIKE_HTTP_LISTEN":               "127.0.0.1:0",
		"SHRIKE_GRPC_LISTEN":               "127.0.0.1:0",
		"SHRIKE_ADMIN_LISTEN":              "off",
		"SHRIKE_LOG_FORMAT":                "json",
		"SHRIKE_STATE_CHECKPOINT_INTERVAL": "100ms",
		"SHRIKE_KAFKA_TRANSACTION_TIMEOUT": "5s",
		"SHRIKE_KAFKA_GROUP":               "secure",
		"SHRIKE_SERVER":                    "not serve's: the API client's",
	}
	for _, kv := range over {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// TestServeSecureFromEnvironment runs `shrike serve` configured by SHRIKE_*
// variables alone against Kafka over TLS with SASL SCRAM-SHA-512 and Redis
// over mutual TLS with an ACL user: it finds the same alerts as
// `shrike run`, produced to the alerts topic.
func TestServeSecureFromEnvironment(t *testing.T) {
	b := startSecureBackends(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	events := readLines(t, "../../rulesets/testdata/payments.jsonl")
	var closers [][]byte
	for p := range 3 {
		closers = append(closers, fmt.Appendf(nil, `{"type":"card_auth","account_id":"acct-end-%d","amount":1.00,"currency":"USD","country":"US","ip":"10.0.0.1","device":"ios-1","success":true,"merchant":"m-1","card_id":"card-1","lat":0,"lon":0,"ts":"2026-11-22T10:00:00.000Z"}`, p))
	}
	want := runAlerts(t, "../../rulesets/payments.yaml", append(slices.Clone(events), closers...))

	var stderr testkit.Buffer
	runCtx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	code := make(chan int, 1)
	go func() {
		code <- run(runCtx, []string{"serve"}, env{
			stdout: newOutput(io.Discard), stderr: newOutput(&stderr), clock: time.Now,
			environ: func() []string { return b.environ() },
		})
	}()
	addrRE := regexp.MustCompile(`"msg":"http listening","addr":"([^"]+)"`)
	var addr string
	for addr == "" {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case c := <-code:
			t.Fatalf("serve exited %d before listening:\n%s", c, stderr.String())
		case <-ctx.Done():
			t.Fatalf("serve did not listen:\n%s", stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	waitReady(ctx, t, client, "http://"+addr)

	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.broker)}, b.kafkaOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, ev := range events {
		recs = append(recs, &kgo.Record{Topic: "payments", Key: eventKey(ev, "account_id"), Value: ev})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	manual, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.broker), kgo.RecordPartitioner(kgo.ManualPartitioner())}, b.kafkaOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	for i, ev := range closers {
		if err := manual.ProduceSync(ctx, &kgo.Record{Topic: "payments", Partition: int32(i), Key: eventKey(ev, "account_id"), Value: ev}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	reader, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(b.broker), kgo.ConsumeTopics(cep.DefaultAlertsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, b.kafkaOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	var got []alertSig
	for len(got) < len(want) {
		fs := reader.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("read alerts: %v after %d\n%s", err, len(got), stderr.String())
		}
		for _, r := range fs.Records() {
			got = append(got, sigOf(t, r.Value))
		}
	}
	if diff := cmp.Diff(sortSigs(want), sortSigs(got)); diff != "" {
		t.Errorf("alerts of serve over TLS and SASL (-run +serve):\n%s", diff)
	}
	interrupt()
	if c := <-code; c != 0 {
		t.Errorf("exit status after interrupt = %d, want 0:\n%s", c, stderr.String())
	}
	for _, s := range []string{`"msg":"engine started","group":"secure"`, `"msg":"shut down cleanly"`} {
		if !strings.Contains(stderr.String(), s) {
			t.Errorf("log does not say %s:\n%s", s, stderr.String())
		}
	}
}

// TestServeSecureStartErrors: wrong credentials or certificates stop serve
// at start, with an error that names what failed, well before any retry
// would give up.
func TestServeSecureStartErrors(t *testing.T) {
	b := startSecureBackends(t)
	other := testkit.NewPKI(t, b.dir, "other")
	for _, tt := range []struct {
		name string
		over []string
		code int
		want []string
	}{
		{
			"wrong Kafka password",
			[]string{"SHRIKE_KAFKA_SASL_PASSWORD_FILE=" + filepath.Join(b.dir, "wrong.pass")},
			1,
			[]string{`kafka SASL authentication (scram-sha-512, user "alice") with ` + b.broker + " failed"},
		},
		{
			"wrong Kafka CA",
			[]string{"SHRIKE_KAFKA_TLS_CA_FILE=" + other.CAFile},
			1,
			[]string{"kafka TLS handshake with " + b.broker + " failed", "certificate signed by unknown authority"},
		},
		{
			"Kafka without TLS",
			[]string{"SHRIKE_KAFKA_TLS_CA_FILE="},
			1,
			[]string{"kafka at " + b.broker + " closed the connection at once (a TLS listener needs kafka.tls)"},
		},
		{
			"wrong Redis password",
			[]string{"SHRIKE_REDIS_PASSWORD_FILE=" + filepath.Join(b.dir, "wrong.pass")},
			1,
			[]string{`redis AUTH as user "shrike" at ` + b.redis.Addr + " failed", "WRONGPASS"},
		},
		{
			"wrong Redis CA",
			[]string{"SHRIKE_REDIS_TLS_CA_FILE=" + other.CAFile},
			1,
			[]string{"redis TLS handshake with " + b.redis.Addr + " failed", "certificate signed by unknown authority"},
		},
		{
			"missing password file",
			[]string{"SHRIKE_REDIS_PASSWORD_FILE=" + filepath.Join(b.dir, "nope")},
			2,
			[]string{"redis.password_file: open " + filepath.Join(b.dir, "nope")},
		},
		{
			"a secret in the environment",
			[]string{"SHRIKE_REDIS_PASSWORD=s3cret-redis"},
			2,
			[]string{"SHRIKE_REDIS_PASSWORD: redis.password: a secret is never read from the environment"},
		},
		{
			"a misspelt variable",
			[]string{"SHRIKE_REDIS_PASSWORD_FIEL=x"},
			2,
			[]string{"SHRIKE_REDIS_PASSWORD_FIEL: is not a configuration variable (did you mean SHRIKE_REDIS_PASSWORD_FILE?)"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			var stderr testkit.Buffer
			code := run(ctx, []string{"serve"}, env{
				stdout: newOutput(io.Discard), stderr: newOutput(&stderr), clock: time.Now,
				environ: func() []string { return b.environ(tt.over...) },
			})
			if ctx.Err() != nil {
				t.Fatalf("serve ran until the test's deadline:\n%s", stderr.String())
			}
			if code != tt.code {
				t.Errorf("exit status %d, want %d:\n%s", code, tt.code, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

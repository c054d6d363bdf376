package cep

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// secureCluster starts kfake with a TLS listener and SASL, its one
// user alice/wonderland with mechanism ("SCRAM-SHA-512", ...), and
// returns its addresses and the CA's PKI.
func secureCluster(t *testing.T, mechanism string, topics ...string) ([]string, *testkit.PKI) {
	t.Helper()
	pki := testkit.NewPKI(t, t.TempDir(), "kafka")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, topics...), kfake.AllowAutoTopicCreation(),
		kfake.TLS(pki.ServerTLS(false)), kfake.EnableSASL(), kfake.Superuser(mechanism, "alice", "wonderland"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs(), pki
}

// TestEngineOverTLSAndSCRAM runs the engine against a broker that speaks
// only TLS and requires SASL SCRAM-SHA-512: the same events give the same
// alerts as Replay, produced to the alerts topic over the same
// connection.
func TestEngineOverTLSAndSCRAM(t *testing.T) {
	brokers, pki := secureCluster(t, "SCRAM-SHA-512", "payments")
	sec := KafkaSecurity{
		TLS:           &tls.Config{RootCAs: pki.Pool, MinVersion: tls.VersionTLS12},
		SASLMechanism: SASLScramSHA512, SASLUser: "alice", SASLPassword: "wonderland",
	}
	secOpts, err := sec.Options()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := CheckKafka(ctx, brokers, sec); err != nil {
		t.Fatalf("CheckKafka with the right credentials: %v", err)
	}
	rs := loadPayments(t)
	lines := paymentsEvents(t, 1500, 100, 0.05)
	prod := produceKeyed(t, brokers, rs, lines, func(r *kgo.Record) { r.Topic = "payments" }, secOpts...)
	want := replayAlerts(t, rs, lines, prod)

	clock := newFakeClock()
	log := newAlertLog()
	e := start(t, EngineOptions{
		Brokers: brokers, Rulesets: []*rules.Compiled{rs}, Store: state.NewMemory(),
		Clock: clock.Now, OnAlert: log.add, KafkaOptions: secOpts, ExactlyOnce: true,
	})
	testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)
	testkit.WaitFor(t, 0, "every record to be processed", func() bool { return consumed(prod, e) })
	closeWindows(t, clock, prod, e)
	e.stop(t)
	log.check(t, want)

	got := readTopicWith(t, brokers, DefaultAlertsTopic, secOpts...)
	if len(got) != len(want) {
		t.Errorf("alerts topic read over TLS and SCRAM holds %d alerts, want %d", len(got), len(want))
	}
}

// readTopicWith reads every committed record of topic with extra client
// options (the security ones).
func readTopicWith(t *testing.T, brokers []string, topic string, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// TestCheckKafkaNamesWhatFailed checks that the start-up check turns each
// misconfiguration into an error that names it, at once.
func TestCheckKafkaNamesWhatFailed(t *testing.T) {
	for _, mech := range []struct{ kfake, ours string }{
		{"PLAIN", SASLPlain}, {"SCRAM-SHA-256", SASLScramSHA256}, {"SCRAM-SHA-512", SASLScramSHA512},
	} {
		t.Run(ours(mech.ours), func(t *testing.T) {
			brokers, pki := secureCluster(t, mech.kfake)
			other := testkit.NewPKI(t, t.TempDir(), "other")
			good := KafkaSecurity{
				TLS:           &tls.Config{RootCAs: pki.Pool, MinVersion: tls.VersionTLS12},
				SASLMechanism: mech.ours, SASLUser: "alice", SASLPassword: "wonderland",
			}
			wrongPassword := good
			wrongPassword.SASLPassword = "looking-glass"
			wrongCA := good
			wrongCA.TLS = &tls.Config{RootCAs: other.Pool, MinVersion: tls.VersionTLS12}
			wrongName := good
			wrongName.TLS = &tls.Config{RootCAs: pki.Pool, ServerName: "kafka.example", MinVersion: tls.VersionTLS12}
			noTLS := good
			noTLS.TLS = nil
			noSASL := good
			noSASL.SASLMechanism = ""
			for _, tt := range []struct {
				name string
				sec  KafkaSecurity
				want []string // in the error; none: no error
			}{
				{"right credentials", good, nil},
				{"wrong password", wrongPassword, []string{"kafka SASL authentication (" + mech.ours + `, user "alice")`, "failed"}},
				{"wrong CA", wrongCA, []string{"kafka TLS handshake with " + brokers[0] + " failed", "certificate signed by unknown authority"}},
				{"wrong server name", wrongName, []string{"kafka TLS handshake", "kafka.example"}},
				{"no SASL to a listener that requires it", noSASL, []string{"kafka at " + brokers[0] + " closed the connection at once (a listener that requires SASL needs kafka.sasl)"}},
				{"plaintext to a TLS listener", noTLS, []string{"kafka at " + brokers[0] + " closed the connection at once (a TLS listener needs kafka.tls)"}},
			} {
				t.Run(tt.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					err := CheckKafka(ctx, brokers, tt.sec)
					if tt.want == nil {
						if err != nil {
							t.Fatalf("CheckKafka = %v, want nil", err)
						}
						return
					}
					if err == nil {
						t.Fatalf("CheckKafka = nil, want an error with %q", tt.want)
					}
					for _, w := range tt.want {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("CheckKafka = %v, want it to say %q", err, w)
						}
					}
					if ctx.Err() != nil {
						t.Errorf("CheckKafka took until its deadline: %v", err)
					}
				})
			}
		})
	}
}

func ours(s string) string { return strings.ReplaceAll(s, "-", "_") }

// TestCheckKafkaUnreachable tells a broker that is not there from a
// misconfigured one: the caller may go on and let the clients retry.
func TestCheckKafkaUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := CheckKafka(ctx, []string{"127.0.0.1:1"}, KafkaSecurity{})
	if !errors.Is(err, ErrKafkaUnreachable) {
		t.Errorf("CheckKafka of a closed port = %v, want ErrKafkaUnreachable", err)
	}
}

func TestKafkaSecurityUnknownMechanism(t *testing.T) {
	_, err := KafkaSecurity{SASLMechanism: "gssapi"}.Options()
	if err == nil || !strings.Contains(err.Error(), `unknown mechanism "gssapi"`) {
		t.Errorf("Options with gssapi = %v, want an error naming it", err)
	}
}

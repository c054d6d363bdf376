package cep

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The SASL mechanisms KafkaSecurity accepts, as Kafka names them
// (sasl.enabled.mechanisms), in lower case as the configuration spells
// them.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

// SASLMechanisms are the mechanisms KafkaSecurity accepts.
var SASLMechanisms = []string{SASLPlain, SASLScramSHA256, SASLScramSHA512}

// KafkaSecurity is how every Kafka client of serve connects to the
// brokers: over TLS when TLS is set, authenticated with SASL when
// SASLMechanism is set. The zero value is plaintext without
// authentication.
type KafkaSecurity struct {
	// TLS, when set, dials every broker with TLS.
	TLS *tls.Config
	// SASLMechanism is one of SASLMechanisms, or empty for none.
	SASLMechanism string
	SASLUser      string
	SASLPassword  string
}

// Options returns the franz-go options for EngineOptions.KafkaOptions and
// the feed's clients.
func (s KafkaSecurity) Options() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if s.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(s.TLS))
	}
	var m sasl.Mechanism
	switch strings.ToLower(s.SASLMechanism) {
	case "":
		return opts, nil
	case SASLPlain:
		m = plain.Auth{User: s.SASLUser, Pass: s.SASLPassword}.AsMechanism()
	case SASLScramSHA256:
		m = scram.Auth{User: s.SASLUser, Pass: s.SASLPassword}.AsSha256Mechanism()
	case SASLScramSHA512:
		m = scram.Auth{User: s.SASLUser, Pass: s.SASLPassword}.AsSha512Mechanism()
	default:
		return nil, fmt.Errorf("kafka sasl: unknown mechanism %q (known: %s)", s.SASLMechanism, strings.Join(SASLMechanisms, ", "))
	}
	return append(opts, kgo.SASL(m)), nil
}

// ErrKafkaUnreachable is wrapped by CheckKafka's error when no broker
// could be dialled at all: the brokers may be starting, so a caller may
// go on and let the clients retry. Any other error of CheckKafka is a
// misconfiguration that retrying does not cure.
var ErrKafkaUnreachable = errors.New("no broker reachable")

// CheckKafka connects to one of the brokers as the clients of serve do
// (with opts: KafkaSecurity's options) and returns why it could not: a
// failed TLS handshake (with the certificate problem), a refused SASL
// authentication (with the mechanism and user), or ErrKafkaUnreachable
// when no broker could be dialled within ctx. It is the start-up check
// that turns wrong credentials into an error at once rather than clients
// retrying for ever.
func CheckKafka(ctx context.Context, brokers []string, sec KafkaSecurity, opts ...kgo.Opt) error {
	secOpts, err := sec.Options()
	if err != nil {
		return err
	}
	all := append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID("shrike-check")}, secOpts...)
	cl, err := kgo.NewClient(append(all, opts...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	err = cl.Ping(ctx)
	if err == nil {
		return nil
	}
	where := strings.Join(brokers, ",")
	switch {
	case isTLSError(err):
		return fmt.Errorf("kafka TLS handshake with %s failed: %w", where, err)
	case isSASLError(err) && sec.SASLMechanism != "":
		return fmt.Errorf("kafka SASL authentication (%s, user %q) with %s failed: %w", sec.SASLMechanism, sec.SASLUser, where, err)
	case isDialError(err) || ctx.Err() != nil:
		return fmt.Errorf("kafka %s: %w: %w", where, ErrKafkaUnreachable, err)
	}
	// franz-go guesses why a broker closed a connection at once.
	if sec.TLS == nil && strings.Contains(err.Error(), "is TLS missing") {
		return fmt.Errorf("kafka at %s closed the connection at once (a TLS listener needs kafka.tls): %w", where, err)
	}
	if sec.SASLMechanism == "" && strings.Contains(err.Error(), "is SASL missing") {
		return fmt.Errorf("kafka at %s closed the connection at once (a listener that requires SASL needs kafka.sasl): %w", where, err)
	}
	// Some brokers close the connection rather than answer a failed
	// authentication; a plaintext listener closes it during the TLS
	// handshake. A handshake of its own tells the two apart.
	if sec.TLS != nil {
		if herr := tlsHandshake(ctx, brokers, sec.TLS); herr != nil {
			return fmt.Errorf("kafka TLS handshake with %s failed (is it a TLS listener?): %w", where, herr)
		}
	}
	if sec.SASLMechanism != "" {
		return fmt.Errorf("kafka SASL authentication (%s, user %q) with %s failed (the broker closed the connection: wrong user, password or mechanism?): %w",
			sec.SASLMechanism, sec.SASLUser, where, err)
	}
	return fmt.Errorf("kafka %s: %w", where, err)
}

// tlsHandshake makes a TLS handshake with the first broker that accepts a
// connection, and returns why it failed.
func tlsHandshake(ctx context.Context, brokers []string, cfg *tls.Config) error {
	var last error
	for _, b := range brokers {
		c := cfg.Clone()
		if c.ServerName == "" {
			if host, _, err := net.SplitHostPort(b); err == nil {
				c.ServerName = host
			}
		}
		d := tls.Dialer{Config: c}
		conn, err := d.DialContext(ctx, "tcp", b)
		if err == nil {
			_ = conn.Close() // only the handshake mattered
			return nil
		}
		if isDialError(err) {
			last = err
			continue
		}
		return err
	}
	return last
}

func isSASLError(err error) bool {
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.UnsupportedSaslMechanism) ||
		errors.Is(err, kerr.IllegalSaslState) || strings.Contains(err.Error(), "SASL")
}

// isTLSError reports whether err is a failed TLS handshake: a
// certificate that does not verify, a peer that does not speak TLS, or
// an alert the peer sent.
func isTLSError(err error) bool {
	var (
		unknownCA  x509.UnknownAuthorityError
		hostname   x509.HostnameError
		invalid    x509.CertificateInvalidError
		verify     *tls.CertificateVerificationError
		header     tls.RecordHeaderError
		alert      tls.AlertError
		echRejects *tls.ECHRejectionError
	)
	return errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &alert) || errors.As(err, &echRejects) ||
		strings.Contains(err.Error(), "tls: ")
}

// isDialError reports whether err is a failure to open a connection at
// all (refused, unreachable, a name that does not resolve).
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

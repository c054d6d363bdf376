package state

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// Check is the start-up check of a Redis store: it sends one command as
// the store's connections do (TLS, AUTH) and returns why it failed. An
// error wrapping ErrUnavailable means the server could not be reached or
// is not ready yet (refused, timed out, loading): a caller may go on and
// let the store retry. Any other error is a misconfiguration that no retry
// cures, and it names what failed: the TLS handshake (with the certificate
// problem), AUTH (with the user), or a server that closed the connection
// at once (a TLS port spoken to in plaintext).
func (r *Redis) Check(ctx context.Context) error {
	err := r.client.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	where := strings.Join(r.addrs, ",")
	user := r.user
	if user == "" {
		user = "default"
	}
	var re redis.Error
	switch {
	case isTLSError(err):
		return fmt.Errorf("redis TLS handshake with %s failed: %w", where, err)
	case errors.As(err, &re) && (strings.HasPrefix(re.Error(), "WRONGPASS") || strings.HasPrefix(re.Error(), "NOAUTH") ||
		strings.Contains(re.Error(), "AUTH") || strings.HasPrefix(re.Error(), "NOPERM")):
		return fmt.Errorf("redis AUTH as user %q at %s failed: %w", user, where, err)
	case isDial(err) || unavailable(err) && !brokenAtOnce(err):
		return wrapErr("redis "+where, err)
	case r.tls:
		return fmt.Errorf("redis TLS handshake with %s failed (is it a TLS port?): %w", where, err)
	case brokenAtOnce(err):
		return fmt.Errorf("redis at %s closed the connection at once (a TLS port needs redis.tls): %w", where, err)
	}
	return fmt.Errorf("redis %s: %w", where, err)
}

// isTLSError reports whether err is a failed TLS handshake.
func isTLSError(err error) bool {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		header    tls.RecordHeaderError
		alert     tls.AlertError
	)
	return errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &header) || errors.As(err, &alert) ||
		strings.Contains(err.Error(), "tls: ")
}

// isDial reports whether err is a failure to open a connection at all.
func isDial(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// brokenAtOnce reports whether the server closed a connection it had
// accepted, before answering the first command.
func brokenAtOnce(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

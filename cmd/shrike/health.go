package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// defaultHealthURLs are the probes of the admin listener at the address a
// container gives it (admin.listen 0.0.0.0:8079, reached on loopback).
var defaultHealthURLs = []string{"http://127.0.0.1:8079/healthz", "http://127.0.0.1:8079/readyz"}

// healthBodyLimit bounds how much of a probe's answer is read and quoted:
// /readyz gives one line of reason, and a misconfigured URL may answer with
// anything.
const healthBodyLimit = 4096

// healthFlags are the options of `shrike health`.
type healthFlags struct {
	urls    []string
	timeout time.Duration
	caFile  string
	quiet   bool
}

// newHealthCmd is `shrike health`: an HTTP probe for images that have no
// shell or curl (the Dockerfile's HEALTHCHECK), so that the binary checks
// its own /healthz and /readyz.
func newHealthCmd(e env) *cobra.Command {
	var f healthFlags
	cmd := &cobra.Command{
		Use:   "health [--url URL]... [--timeout DURATION]",
		Short: "Probe a running serve's /healthz and /readyz; exit 0 when every URL answers 2xx",
		Long: `Health sends GET to each URL in turn (by default /healthz and /readyz of the
admin listener on 127.0.0.1:8079) and exits 0 when every one answers with a
2xx status, 1 when one answers otherwise or cannot be reached (it says which
and why on stderr, with the first line of the answer, such as /readyz's
reason). It follows no redirects. It is the container image's HEALTHCHECK:
the image has no shell or curl.

An https URL is verified against the system's roots, or --ca-file.`,
		Example: `  shrike health
  shrike health --url http://127.0.0.1:8080/readyz --timeout 2s`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unexpected argument %q (give URLs with --url)", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runHealth(cmd.Context(), e, f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.urls, "url", defaultHealthURLs, "`URL` to probe (repeat for several; all must answer 2xx)")
	fl.DurationVar(&f.timeout, "timeout", 3*time.Second, "give up on each URL after `DURATION`")
	fl.StringVar(&f.caFile, "ca-file", "", "PEM `FILE` of the CA that signed an https URL's certificate")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing when every URL answers 2xx")
	return cmd
}

func runHealth(ctx context.Context, e env, f healthFlags) error {
	if f.timeout <= 0 {
		return usageError{fmt.Errorf("--timeout %v: must be positive", f.timeout)}
	}
	for _, u := range f.urls {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return usageError{fmt.Errorf("--url %q: want an absolute http:// or https:// URL", u)}
		}
	}
	client, err := healthClient(f)
	if err != nil {
		return err
	}
	failed := false
	for _, u := range f.urls {
		status, err := probe(ctx, client, u, f.timeout)
		if err != nil {
			fmt.Fprintf(e.stderr, "shrike health: %s: %v\n", u, err)
			failed = true
			continue
		}
		if !f.quiet {
			fmt.Fprintf(e.stdout, "%s: %s\n", u, status)
		}
	}
	if failed {
		return errReported
	}
	return nil
}

// healthClient is an HTTP client that follows no redirects (a probe
// judges the answer of the URL it was given) and trusts --ca-file when
// given.
func healthClient(f healthFlags) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil // a probe of this host never goes through a proxy
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", f.caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// probe sends one GET and returns the status line when it is 2xx; any
// other answer is an error quoting the status and the first line of the
// body.
func probe(ctx context.Context, client *http.Client, u string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "", fmt.Errorf("no answer within %v", timeout)
		}
		return "", err
	}
	defer resp.Body.Close() //nolint:errcheck // read-only body; its close error says nothing about health
	body, _ := io.ReadAll(io.LimitReader(resp.Body, healthBodyLimit))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		first, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
		if first == "" {
			return "", errors.New(resp.Status)
		}
		return "", fmt.Errorf("%s: %s", resp.Status, first)
	}
	return resp.Status, nil
}

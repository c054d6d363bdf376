// Package check tests the operator's files under deploy/ with
// Prometheus' own parsers: the alerting rules as Prometheus loads them
// (rulefmt: structure, PromQL, annotation templates) and every PromQL
// query of the Grafana dashboard. It is a module of its own so that the
// engine's module does not depend on Prometheus' server packages; run it
// with `cd deploy/check && go test -count=1 ./...` (the files it reads
// lie outside the module, where go test's cache does not look). That
// every metric these files query exists on a running serve is tested in
// cmd/shrike (TestServeMetricsCoverDashboardAndAlerts).
package check

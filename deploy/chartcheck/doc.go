// Package chartcheck tests the Helm chart of deploy/helm/shrike: it renders
// the chart with Helm's own engine (helm.sh/helm/v4, pinned in this module's
// go.mod so that the engine's module stays free of Helm and Kubernetes) for
// the default values and a few variations, and decodes every manifest
// strictly into the Kubernetes API types (prometheus-operator's for the
// ServiceMonitor): an unknown or misspelt field fails the test, as would a
// wrong type. It then checks what the chart promises: the security
// context, the probes, secrets only as mounted files, and a configuration
// file that shrike's own loader accepts.
//
// It is a module of its own; scripts/test runs it (`go test` in this folder).
package chartcheck

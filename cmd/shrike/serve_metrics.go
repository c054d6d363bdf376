package main

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// buildInfo is shrike_build_info: 1, labelled with what the binary was
// built from, so that a dashboard shows what each instance runs and a
// query can join the labels onto the instance's other series
// (`… * on(instance) group_left(version) shrike_build_info`).
func buildInfo(id buildIdentity) prometheus.Collector {
	revision, goVersion := id.revision, id.goVersion
	if revision == "" {
		revision = "unknown"
	}
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "shrike", Name: "build_info",
		Help:        "1, labelled with the version, the commit (revision) and the Go release the binary was built from.",
		ConstLabels: prometheus.Labels{"version": id.version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	return g
}

// binaryIdentity is the running binary's build identity.
func binaryIdentity() buildIdentity {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return identify(version, bi)
}

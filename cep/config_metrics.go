package cep

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// KafkaClientMetrics returns EngineOptions.KafkaOptions that export the
// Kafka client's own metrics on reg as shrike_kafka_* (connections, bytes
// and requests per broker, produced and fetched batches per topic), next to
// the engine's. The metrics are registered when the engine's client is
// created, so the options serve one Engine. Gather them through
// KafkaGaugesRenamed.
func KafkaClientMetrics(reg prometheus.Registerer) []kgo.Opt {
	m := kprom.NewMetrics("shrike", kprom.Subsystem("kafka"), kprom.Registerer(reg),
		kprom.FetchAndProduceDetail(kprom.ByNode, kprom.ByTopic, kprom.UncompressedBytes, kprom.Records))
	return []kgo.Opt{kgo.WithHooks(m)}
}

// kafkaGaugeNames are the Kafka client's gauges whose names end in
// _total, which Prometheus keeps for counters (rate() and recording
// rules take a _total series for one), by the names Shrike exports them
// under: those of their _bytes twins, without the suffix.
var kafkaGaugeNames = map[string]string{
	"shrike_kafka_buffered_produce_records_total": "shrike_kafka_buffered_produce_records",
	"shrike_kafka_buffered_fetch_records_total":   "shrike_kafka_buffered_fetch_records",
}

// KafkaGaugesRenamed gathers g with the Kafka client's gauges named
// _total (KafkaClientMetrics) renamed to names without the suffix. kprom
// names them and offers no option to change that, so the names are
// changed as they are gathered.
func KafkaGaugesRenamed(g prometheus.Gatherer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather()
		renamed := false
		for _, mf := range mfs {
			if to, ok := kafkaGaugeNames[mf.GetName()]; ok && mf.GetType() == dto.MetricType_GAUGE {
				mf.Name = &to
				renamed = true
			}
		}
		if renamed {
			// Gatherers hand families sorted by name.
			slices.SortFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
		}
		return mfs, err
	})
}

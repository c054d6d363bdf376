package cep

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// KafkaClientMetrics returns EngineOptions.KafkaOptions that export the
// Kafka client's own metrics on reg as shrike_kafka_* (connections, bytes
// and requests per broker, produced and fetched batches per topic), next to
// the engine's. The metrics are registered when the engine's client is
// created, so the options serve one Engine.
func KafkaClientMetrics(reg prometheus.Registerer) []kgo.Opt {
	m := kprom.NewMetrics("shrike", kprom.Subsystem("kafka"), kprom.Registerer(reg),
		kprom.FetchAndProduceDetail(kprom.ByNode, kprom.ByTopic, kprom.UncompressedBytes, kprom.Records))
	return []kgo.Opt{kgo.WithHooks(m)}
}

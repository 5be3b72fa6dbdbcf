package brokermetrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/wsbroker/wsbroker/cluster"
)

var (
	descClusterConnected = prometheus.NewDesc("wsbroker_cluster_connected", "1 while the cluster's engine is reachable, else 0.", nil, nil)
	descClusterNodes     = prometheus.NewDesc("wsbroker_cluster_nodes", "Live nodes of the cluster, this one included.", nil, nil)
	descClusterChannels  = prometheus.NewDesc("wsbroker_cluster_channels", "Channels the engine has subscribed for this node.", nil, nil)
	descClusterPending   = prometheus.NewDesc("wsbroker_cluster_pending_subscribes", "Interest changes not yet confirmed by the engine.", nil, nil)
	descClusterQueued    = prometheus.NewDesc("wsbroker_cluster_queued_bytes", "Bytes of publications waiting for the engine.", nil, nil)
	descClusterPublished = prometheus.NewDesc("wsbroker_cluster_published_total", "Messages this node published to the others.", nil, nil)
	descClusterReceived  = prometheus.NewDesc("wsbroker_cluster_received_total", "Messages received from the engine.", nil, nil)
	descClusterUnrouted  = prometheus.NewDesc("wsbroker_cluster_unrouted_total", "Messages to a socket of a node that had gone.", nil, nil)
	descClusterConnects  = prometheus.NewDesc("wsbroker_cluster_connects_total", "Times the engine was connected.", nil, nil)
	descClusterDropped   = prometheus.NewDesc("wsbroker_cluster_dropped_total", "Messages dropped, by reason.", []string{"reason"}, nil)
	descClusterLag       = prometheus.NewDesc("wsbroker_cluster_lag_seconds", "Time from publication on the origin node to delivery here (upper bound of a power-of-two bucket).", []string{"quantile"}, nil)
)

// ClusterCollector returns a collector of a cluster node's figures, read at each scrape from
// stats (nil: the process is in no cluster now, and there are none).
func ClusterCollector(stats func() *cluster.Stats) prometheus.Collector {
	return clusterCollector(stats)
}

type clusterCollector func() *cluster.Stats

func (clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClusterConnected, descClusterNodes, descClusterChannels, descClusterPending, descClusterQueued,
		descClusterPublished, descClusterReceived, descClusterUnrouted, descClusterConnects, descClusterDropped, descClusterLag} {
		ch <- d
	}
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	st := c()
	if st == nil {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	connected := 0.0
	if st.Connected {
		connected = 1
	}
	gauge(descClusterConnected, connected)
	gauge(descClusterNodes, float64(st.Nodes))
	gauge(descClusterChannels, float64(st.Channels))
	gauge(descClusterPending, float64(st.PendingSubscribes))
	gauge(descClusterQueued, float64(st.QueuedBytes))
	counter(descClusterPublished, st.Published)
	counter(descClusterReceived, st.Received)
	counter(descClusterUnrouted, st.Unrouted)
	counter(descClusterConnects, st.Connects)
	counter(descClusterDropped, st.Dropped.Disconnected, "disconnected")
	counter(descClusterDropped, st.Dropped.Slow, "slow")
	counter(descClusterDropped, st.Dropped.Decode, "decode")
	counter(descClusterDropped, st.Dropped.TooLarge, "tooLarge")
	counter(descClusterDropped, st.Dropped.Refused, "refused")
	gauge(descClusterLag, st.LagMs.P50/1000, "0.5")
	gauge(descClusterLag, st.LagMs.P99/1000, "0.99")
}

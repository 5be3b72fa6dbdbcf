// Package brokermetrics exports a broker's figures: its Stats to Prometheus, and the Go runtime's
// memory. It is apart from package broker so that a program that embeds the broker without
// Prometheus does not link it.
package brokermetrics

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/wsbroker/wsbroker/broker"
)

// Serve serves b's Stats in Prometheus text format at http://addr/metrics, with the figures of
// extra collectors (the bridge adds its workers' queues), until the returned stop is called (the
// bridge calls it when the listeners started with it fail, and when it closes b). It returns
// once listening; the error names the address and the reason.
func Serve(b *broker.Broker, addr string, extra ...prometheus.Collector) (net.Addr, func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(statsCollector{b})
	for _, c := range extra {
		if err := reg.Register(c); err != nil {
			return nil, nil, err
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err // "bind: address already in use" without "listen tcp <addr>: "
		}
		return nil, nil, fmt.Errorf("cannot serve metrics on %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout}
	go srv.Serve(ln)
	stop := func() {
		srv.Close()
		ln.Close() // Serve may not have taken it yet
	}
	return ln.Addr(), stop, nil
}

// readHeaderTimeout bounds how long a scrape's request may take to arrive.
const readHeaderTimeout = 10 * time.Second

var (
	descConnections = prometheus.NewDesc("wsbroker_connections", "WebSocket connections accepted and not yet ended.", nil, nil)
	descAccepted    = prometheus.NewDesc("wsbroker_connections_accepted_total", "WebSocket connections accepted.", nil, nil)
	descChannels    = prometheus.NewDesc("wsbroker_channels", "Channels with at least one subscriber.", nil, nil)
	descMessagesIn  = prometheus.NewDesc("wsbroker_messages_received_total", "Messages received from clients.", nil, nil)
	descBytesIn     = prometheus.NewDesc("wsbroker_received_bytes_total", "Payload bytes of the messages received from clients.", nil, nil)
	descMessagesOut = prometheus.NewDesc("wsbroker_messages_sent_total", "Messages queued to clients (a broadcast counts once per recipient).", nil, nil)
	descBytesOut    = prometheus.NewDesc("wsbroker_written_bytes_total", "Bytes written to sockets.", nil, nil)
	descQueued      = prometheus.NewDesc("wsbroker_queued_bytes", "Bytes queued for sockets and not yet written.", nil, nil)
	descClosed      = prometheus.NewDesc("wsbroker_connections_closed_total", "Connections ended, by close code.", []string{"code"}, nil)
	descClosedRate  = prometheus.NewDesc("wsbroker_connections_closed_for_rate_total", "Connections closed with 1008 for sending over maxMessagesPerSecond.", nil, nil)
	descRefusedIP   = prometheus.NewDesc("wsbroker_upgrades_refused_per_ip_total", "Upgrades refused with HTTP 429 for maxConnectionsPerIp.", nil, nil)
)

// statsCollector reads Stats at each scrape.
type statsCollector struct{ b *broker.Broker }

// Describe sends the descriptions of every figure Collect sends.
func (statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descAccepted, descChannels, descMessagesIn, descBytesIn, descMessagesOut, descBytesOut, descQueued, descClosed, descClosedRate, descRefusedIP} {
		ch <- d
	}
}

// Collect sends the figures of the broker's Stats now.
func (s statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := s.b.Stats()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(descConnections, float64(st.Connections))
	counter(descAccepted, st.Accepted)
	gauge(descChannels, float64(st.Channels))
	counter(descMessagesIn, st.MessagesIn)
	counter(descBytesIn, st.BytesIn)
	counter(descMessagesOut, st.MessagesOut)
	counter(descBytesOut, st.BytesOut)
	counter(descClosedRate, st.ClosedForRate)
	counter(descRefusedIP, st.RefusedPerIP)
	gauge(descQueued, float64(st.QueuedBytes))
	for code, n := range st.Closed {
		ch <- prometheus.MustNewConstMetric(descClosed, prometheus.CounterValue, float64(n), strconv.Itoa(int(code)))
	}
}

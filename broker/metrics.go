package broker

import (
	"net"
	"net/http"
	"runtime/metrics"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServeMetrics serves the broker's Stats in Prometheus text format at http://addr/metrics, with
// the figures of extra collectors (the bridge adds its workers' queues), until Close or until
// the returned stop is called (the bridge stops it when the listeners started with it fail, so
// that a failed start leaves nothing bound). It returns once listening; the error names the
// address and the reason.
func (b *Broker) ServeMetrics(addr string, extra ...prometheus.Collector) (net.Addr, func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(statsCollector{b})
	for _, c := range extra {
		if err := reg.Register(c); err != nil {
			return nil, nil, err
		}
	}
	ln, err := listenTCP(addr, "serve metrics on", 0)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: defaultHandshakeTimeout}
	b.lmu.Lock()
	b.metricsServers = append(b.metricsServers, srv)
	b.lmu.Unlock()
	go srv.Serve(ln)
	stop := func() {
		b.lmu.Lock()
		b.metricsServers = slices.DeleteFunc(b.metricsServers, func(s *http.Server) bool { return s == srv })
		b.lmu.Unlock()
		srv.Close()
		ln.Close() // Serve may not have taken it yet
	}
	return ln.Addr(), stop, nil
}

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
)

// statsCollector reads Stats at each scrape.
type statsCollector struct{ b *Broker }

func (statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descAccepted, descChannels, descMessagesIn, descBytesIn, descMessagesOut, descBytesOut, descQueued, descClosed} {
		ch <- d
	}
}

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
	gauge(descQueued, float64(st.QueuedBytes))
	for code, n := range st.Closed {
		ch <- prometheus.MustNewConstMetric(descClosed, prometheus.CounterValue, float64(n), strconv.Itoa(int(code)))
	}
}

// GoMemory is where the Go runtime's memory goes, so that a process's RSS can be split between Go
// and the rest (in the addon: V8 and Node).
type GoMemory struct {
	// HeapBytes is the heap in use: live and not yet swept objects, and the unused parts of
	// their spans.
	HeapBytes uint64 `json:"heapBytes"`
	// StackBytes is the memory of goroutine stacks.
	StackBytes uint64 `json:"stackBytes"`
	// MappedBytes is all the memory the Go runtime holds and has not returned to the system
	// (heap, stacks, free spans, runtime metadata).
	MappedBytes uint64 `json:"mappedBytes"`
	Goroutines  uint64 `json:"goroutines"`
}

var goMemorySamples = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/stacks:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/sched/goroutines:goroutines",
}

// ReadGoMemory reads the Go runtime's memory figures (runtime/metrics: no stop of the world).
func ReadGoMemory() GoMemory {
	s := make([]metrics.Sample, len(goMemorySamples))
	for i, name := range goMemorySamples {
		s[i].Name = name
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return GoMemory{HeapBytes: v(0) + v(1), StackBytes: v(2), MappedBytes: v(3) - v(4), Goroutines: v(5)}
}

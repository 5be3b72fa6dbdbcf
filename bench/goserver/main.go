// Command goserver is the benchmark application (the protocol of bench/README.md) on WSBroker's Go
// core with a Go Handler: no JavaScript. It is the limit of what the JavaScript hop costs.
//
//	goserver -addr 127.0.0.1:9003 [-compression] [-max-payload bytes] [-tls-cert cert.pem -tls-key key.pem]
//
// It prints "listening <addr>" on stdout once listening, and stops on SIGINT or SIGTERM.
package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/wsbroker/wsbroker/broker"
	"github.com/wsbroker/wsbroker/brokermetrics"
)

// app implements broker.Handler with the benchmark protocol.
type app struct {
	b *broker.Broker
}

var ok = []byte("ok")

// Open accepts every connection; an x-bench-token header becomes the socket's token.
func (a *app) Open(c *broker.Conn, req *broker.Request) {
	for _, h := range req.Headers {
		if h.Name == "x-bench-token" {
			a.b.SetToken(c.ID(), []byte(h.Value))
			break
		}
	}
	a.b.Accept(c.ID(), true)
}

// Text: "e:<payload>" echo; "s:<channel>" subscribe and answer "ok"; "p:<channel>:<payload>"
// publish; "r:<channel>:<payload>" reply to the sender and publish; "m:" answer the Go runtime's
// memory.
func (a *app) Text(c *broker.Conn, data []byte) {
	if len(data) < 2 || data[1] != ':' {
		return
	}
	rest := data[2:]
	switch data[0] {
	case 'e':
		a.b.Send(c.ID(), rest, true)
	case 's':
		a.b.Subscribe(c.ID(), rest)
		a.b.Send(c.ID(), ok, true)
	case 'p':
		if ch, payload, found := bytes.Cut(rest, []byte{':'}); found {
			a.b.SendToChannel(ch, payload, true, 0)
		}
	case 'r':
		if ch, payload, found := bytes.Cut(rest, []byte{':'}); found {
			a.b.Send(c.ID(), payload, true)
			a.b.SendToChannel(ch, payload, true, 0)
		}
	case 'm':
		m := brokermetrics.ReadGoMemory()
		js, _ := json.Marshal(map[string]uint64{"goHeap": m.HeapBytes, "goStacks": m.StackBytes,
			"goMapped": m.MappedBytes, "goroutines": m.Goroutines})
		a.b.Send(c.ID(), js, true)
	}
}

// Binary sends the message back as it is.
func (a *app) Binary(c *broker.Conn, data []byte) { a.b.Send(c.ID(), data, false) }
func (a *app) ReadDone(c *broker.Conn)            {}
func (a *app) Close(c *broker.Conn)               {}

func main() {
	addr := flag.String("addr", "127.0.0.1:9003", "address to listen on")
	backpressure := flag.Int("backpressure", 0, "MaxBackpressure in bytes (0: the default, 16 MiB)")
	compression := flag.Bool("compression", false, "negotiate permessage-deflate")
	maxPayload := flag.Int64("max-payload", 0, "MaxPayload in bytes (0: the default, 16 MiB)")
	certFile := flag.String("tls-cert", "", "serve wss:// with this PEM certificate (and -tls-key)")
	keyFile := flag.String("tls-key", "", "the PEM key of -tls-cert")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a := &app{}
	a.b = broker.New(a, broker.Options{Logger: log})
	lim := broker.DefaultLimits()
	if *backpressure > 0 {
		lim.MaxBackpressure = *backpressure
	}
	if *maxPayload > 0 {
		lim.MaxPayload = *maxPayload
	}
	lim.Compression = *compression
	if *certFile != "" || *keyFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goserver:", err)
			os.Exit(2)
		}
		lim.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	la, err := a.b.Listen([]string{*addr}, lim)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goserver:", err)
		os.Exit(1)
	}
	fmt.Printf("listening %s\n", la.Addrs()[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	a.b.Close()
}

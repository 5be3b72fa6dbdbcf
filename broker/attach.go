package broker

import (
	"errors"
	"net"
	"sync"
)

// Attachment is a listener of the Broker without a socket of its own: the connections of another
// server (an embedder's HTTP server, which read their upgrade requests) are handed over to it, and
// the Broker serves them as those of Listen, with the Attachment's limits.
type Attachment struct {
	group *Listeners
	ln    *handoffListener
}

// Attach returns an Attachment whose connections get lim (TLS must be nil: the connection is
// handed over as plain TCP); name stands for it where logs name a listener's address.
// Broker.Close closes it with the listeners.
func (b *Broker) Attach(name string, lim Limits) (*Attachment, error) {
	if lim.TLS != nil {
		return nil, errAttachTLS
	}
	lim, err := lim.resolve()
	if err != nil {
		return nil, err
	}
	ln := &handoffListener{name: name, conns: make(chan handedOver), done: make(chan struct{})}
	b.life.Lock()
	defer b.life.Unlock()
	return &Attachment{group: b.newListeners([]net.Listener{ln}, lim), ln: ln}, nil
}

// Listeners returns the group of the Attachment and the connections it took: its Close ends them
// with the Attachment.
func (a *Attachment) Listeners() *Listeners { return a.group }

// Adopt hands tc over: pre are the bytes already read from it (the upgrade request, re-serialised
// if need be, and whatever followed it), which the handshake reads before the socket. tc gets the
// TCP options of a listener's connections. Adopt owns tc from the call on: once the Attachment is
// closed it closes tc and returns net.ErrClosed.
func (a *Attachment) Adopt(tc *net.TCPConn, pre []byte) error {
	if err := a.ln.handOver(handedOver{tc, pre}); err != nil {
		tc.Close()
		return err
	}
	return nil
}

// Close stops the Attachment from taking connections; those it took stay until they end, or
// until Broker.Close or the Close of its Listeners.
func (a *Attachment) Close() { a.ln.Close() }

var errAttachTLS = errors.New("an Attachment's connections are plain TCP: Limits.TLS must be nil")

// setTCPOptions gives tc, a connection accepted elsewhere, the options of a listener's
// connections with lim (listenTCP's): no Nagle, and keep-alive as tcpKeepAlive says.
func setTCPOptions(tc *net.TCPConn, lim Limits) {
	tc.SetNoDelay(true)
	if tcpKeepAlive(lim) < 0 {
		tc.SetKeepAlive(false)
	} else {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true}) // Go's defaults, as a listener's
	}
}

// handedOver is a connection an Attachment took, with the bytes already read from it.
type handedOver struct {
	*net.TCPConn
	pre []byte
}

// handoffListener is the net.Listener of an Attachment: Accept returns what Adopt hands over.
type handoffListener struct {
	name  string
	conns chan handedOver
	done  chan struct{}
	once  sync.Once
}

func (h *handoffListener) handOver(c handedOver) error {
	select {
	case h.conns <- c:
		return nil
	case <-h.done:
		return net.ErrClosed
	}
}

func (h *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoffListener) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoffListener) Addr() net.Addr { return attachedAddr(h.name) }

// attachedAddr names an Attachment where logs name a listener's address.
type attachedAddr string

func (a attachedAddr) Network() string { return "attached" }
func (a attachedAddr) String() string  { return string(a) }

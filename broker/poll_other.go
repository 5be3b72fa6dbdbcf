//go:build unix && !linux

package broker

// Only Linux has pollers (poll_linux.go); elsewhere every connection keeps a reader goroutine.
type poller struct{}

func (b *Broker) pollers() []*poller { return nil }
func (b *Broker) pollerFor() *poller { return nil }
func (p *poller) poll(*Conn, bool)   {}
func (p *poller) remove(*Conn)       {}
func (p *poller) wake(*Conn)         {}

// pollerFDs and dispatchReady: see poll_linux.go; there are none to watch here.
func (b *Broker) pollerFDs() []int                    { return nil }
func (b *Broker) dispatchReady(func(*Conn) bool) bool { return false }

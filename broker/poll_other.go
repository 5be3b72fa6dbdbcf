//go:build unix && !linux

package broker

// Only Linux has pollers (poll_linux.go); elsewhere every connection keeps a reader goroutine.
type poller struct{}

func (b *Broker) pollerFor() *poller { return nil }
func (p *poller) poll(*Conn)         {}
func (p *poller) remove(*Conn)       {}
func (p *poller) wake(*Conn)         {}

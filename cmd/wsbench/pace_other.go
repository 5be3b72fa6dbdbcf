//go:build !linux

package main

// pacer: Go's timers (pace_linux.go has a timerfd).
type pacer struct{}

func newPacer() (*pacer, error) { return &pacer{}, nil }

func (p *pacer) until(t int64, done <-chan struct{}) bool { return sleepUntil(t, done) }

func (p *pacer) close() {}

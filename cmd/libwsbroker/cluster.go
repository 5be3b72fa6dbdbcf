package main

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/wsbroker/wsbroker/cluster"
	"github.com/wsbroker/wsbroker/cluster/nats"
	"github.com/wsbroker/wsbroker/cluster/redis"
)

// The process's membership of a cluster: joined by the start() that gives `cluster` (js/server.cts
// checks that later calls agree), left by stop().
var membership struct {
	sync.Mutex
	node *cluster.Node
}

// clusterConfig is what wsb_cluster_join takes, as JSON (js/options.cts builds it): the URL of
// one engine, and zero for a default.
type clusterConfig struct {
	Redis         string `json:"redis"`
	Nats          string `json:"nats"`
	Prefix        string `json:"prefix"`
	PublishBuffer int    `json:"publishBuffer"`
}

// joinWait is how long start() waits for the engine before it goes on without it.
const joinWait = 5 * time.Second

// joinCluster joins the cluster cfg describes and calls joined once the engine is connected
// (true) or joinWait has passed (false; the node keeps trying, and says so in the log).
func joinCluster(cfg clusterConfig, joined func(connected bool)) error {
	membership.Lock()
	defer membership.Unlock()
	if membership.node != nil {
		joined(true)
		return nil
	}
	engine, err := cfg.engine()
	if err != nil {
		return err
	}
	node, err := cluster.Join(brk, engine, cluster.Options{
		Prefix: cfg.Prefix, PublishBuffer: cfg.PublishBuffer, Logger: slog.New(zerologHandler{l: logger}),
	})
	if err != nil {
		return err
	}
	membership.node = node
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), joinWait)
		defer cancel()
		err := node.WaitConnected(ctx)
		if err != nil {
			st := node.Stats()
			logger.Error().Str("engine", st.Engine).Str("error", st.Error).
				Msgf("cluster: cannot reach %s within %s; local delivery works; retrying in the background", st.Engine, joinWait)
		}
		joined(err == nil)
	}()
	return nil
}

// engine returns the engine cfg names.
func (cfg clusterConfig) engine() (cluster.Engine, error) {
	switch {
	case (cfg.Redis == "") == (cfg.Nats == ""):
		return nil, errors.New("cluster: exactly one of redis and nats")
	case cfg.Redis != "":
		return redis.New(cfg.Redis, redis.Options{})
	default:
		return nats.New(cfg.Nats, nats.Options{})
	}
}

// leaveCluster leaves the cluster, if the process is in one.
func leaveCluster() {
	membership.Lock()
	defer membership.Unlock()
	if membership.node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	membership.node.Leave(ctx)
	membership.node = nil
}

// clusterSubscriberCount calls counted with the subscribers of channel on every node (this one's
// alone without a cluster), on a goroutine of its own: the nodes' answers take a round trip.
func clusterSubscriberCount(channel []byte, counted func(int)) {
	membership.Lock()
	node := membership.node
	membership.Unlock()
	if node == nil {
		counted(brk.SubscriberCount(channel))
		return
	}
	go func() {
		defer recoverInto("clusterSubscriberCount")
		count, _ := node.SubscriberCount(context.Background(), channel)
		counted(count)
	}()
}

// clusterStats returns the node's figures, nil without a cluster.
func clusterStats() *cluster.Stats {
	membership.Lock()
	defer membership.Unlock()
	if membership.node == nil {
		return nil
	}
	st := membership.node.Stats()
	return &st
}

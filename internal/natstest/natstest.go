// Package natstest runs real nats-server processes for Go tests: each test starts its own on free
// loopback ports, optionally with a token, a user and password, or TLS, or three joined by routes
// into a cluster, and stops them by PID when it ends.
package natstest

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsbroker/wsbroker/internal/testprocess"
)

// Options chooses whom the server lets in and how.
type Options struct {
	// Token is the authorization token the server requires; the URL carries it.
	Token string
	// User and Password are the credentials the server requires; the URL carries them.
	User, Password string
	// TLS makes the server accept TLS connections only, with a certificate signed by a CA
	// generated for it (Server.CAs); the URL's scheme is tls://.
	TLS bool
}

// Server is one nats-server child process of a test.
type Server struct {
	// URL is what a client is given: nats:// or tls://, with the credentials if any.
	URL string
	// CAs holds the CA that signed the server's certificate (TLS only).
	CAs *x509.CertPool
	// Monitoring is the base URL of the server's HTTP monitoring endpoints (connz, routez, …).
	Monitoring string

	t       testing.TB
	process *testprocess.Process
}

// readyLine is what nats-server logs once it accepts connections.
const readyLine = "Server is ready"

// waitLimit bounds the wait for a cluster's routes; they come up far sooner.
const waitLimit = 10 * time.Second

// Start starts a nats-server for t and stops it at t's cleanup. Without the binary the test is
// skipped, or fails under CI=true, where the server is part of what is tested.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, args := prepare(t, opts)
	s.process = testprocess.Start(t, testprocess.Binary(t, "nats-server"), args, readyLine)
	return s
}

// prepare chooses the ports, writes the certificates, and returns the server and its arguments.
func prepare(t testing.TB, opts Options) (*Server, []string) {
	t.Helper()
	port, monitorPort := testprocess.FreePort(t), testprocess.FreePort(t)
	s := &Server{t: t, Monitoring: "http://127.0.0.1:" + monitorPort}
	args := []string{"-a", "127.0.0.1", "-p", port, "-m", monitorPort}
	var userinfo string
	switch {
	case opts.Token != "" && opts.User != "":
		t.Fatal("natstest: a token and a user at once")
	case opts.Token != "":
		args = append(args, "--auth", opts.Token)
		userinfo = url.User(opts.Token).String() + "@"
	case opts.User != "":
		args = append(args, "--user", opts.User, "--pass", opts.Password)
		userinfo = url.UserPassword(opts.User, opts.Password).String() + "@"
	}
	scheme := "nats"
	if opts.TLS {
		files, pool := testprocess.WriteCertificates(t, t.TempDir())
		s.CAs = pool
		args = append(args, "--tls", "--tlscert", files.Cert, "--tlskey", files.Key)
		scheme = "tls"
	}
	s.URL = scheme + "://" + userinfo + "127.0.0.1:" + port
	return s, args
}

// StartCluster starts n servers joined by routes into one cluster and returns once each has a
// route to every other.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	bin := testprocess.Binary(t, "nats-server")
	servers := make([]*Server, n)
	args := make([][]string, n)
	routes := make([]string, n)
	for i := range servers {
		servers[i], args[i] = prepare(t, Options{})
		routes[i] = "nats://127.0.0.1:" + testprocess.FreePort(t)
	}
	for i, s := range servers {
		others := slices.Delete(slices.Clone(routes), i, i+1)
		clusterArgs := []string{"--cluster", routes[i], "--cluster_name", "natstest", "--routes", strings.Join(others, ",")}
		s.process = testprocess.Start(t, bin, append(args[i], clusterArgs...), readyLine)
	}
	deadline := time.Now().Add(waitLimit)
	for _, s := range servers {
		for {
			var routez struct {
				NumRoutes int `json:"num_routes"`
			}
			s.monitor("routez", &routez)
			if routez.NumRoutes == n-1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("natstest: %s has %d routes of %d after %v", s.URL, routez.NumRoutes, n-1, waitLimit)
			}
			time.Sleep(10 * time.Millisecond) // routes have no event to wait for but this endpoint
		}
	}
	return servers
}

// Kill ends the server with SIGKILL, as a crash would, and waits until it is gone.
func (s *Server) Kill() { s.process.Kill() }

// Restart starts the server again, on the same addresses, after Kill.
func (s *Server) Restart() { s.process.Restart() }

// Subscriptions returns the subjects the server holds for the client connection cid (as
// nats.Conn.GetClientID reports it), sorted.
func (s *Server) Subscriptions(cid uint64) []string {
	s.t.Helper()
	var connz struct {
		Connections []struct {
			Subscriptions []string `json:"subscriptions_list"`
		} `json:"connections"`
	}
	s.monitor("connz?subs=1&cid="+strconv.FormatUint(cid, 10), &connz)
	if len(connz.Connections) != 1 {
		s.t.Fatalf("natstest: %s has %d connections with id %d", s.URL, len(connz.Connections), cid)
	}
	subjects := connz.Connections[0].Subscriptions
	slices.Sort(subjects)
	return subjects
}

// Interest returns how many subscriptions of the server's clients match subject, plus how many
// of its routes have announced subject itself: what the server would deliver a message to.
func (s *Server) Interest(subject string) int {
	s.t.Helper()
	var subsz struct {
		Total int `json:"total"`
	}
	s.monitor("subsz?subs=1&test="+url.QueryEscape(subject), &subsz)
	var routez struct {
		Routes []struct {
			Subscriptions []string `json:"subscriptions_list"`
		} `json:"routes"`
	}
	s.monitor("routez?subs=1", &routez)
	n := subsz.Total
	for _, r := range routez.Routes {
		if slices.Contains(r.Subscriptions, subject) {
			n++
		}
	}
	return n
}

// monitor reads the monitoring endpoint path into v.
func (s *Server) monitor(path string, v any) {
	s.t.Helper()
	client := http.Client{Timeout: waitLimit}
	resp, err := client.Get(s.Monitoring + "/" + path)
	if err != nil {
		s.t.Fatalf("natstest: monitoring: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("natstest: monitoring %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		s.t.Fatalf("natstest: monitoring %s: decoding: %v", path, err)
	}
}

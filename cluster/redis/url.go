package redis

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/wsbroker/wsbroker/cluster"
)

// address is a parsed Redis URL: where to connect and how to log in.
type address struct {
	scheme   string // redis, rediss or unix
	network  string // tcp or unix
	addr     string // host:port, or the socket's path
	host     string // the TLS server name
	username string
	password string
	db       int
}

const defaultPort = "6379"

// parseURL reads redis://[user:password@]host[:port][/db], rediss://… (TLS) and
// unix://[user:password@]/path[?db=N]; no error it returns contains the password.
func parseURL(raw string) (address, error) {
	if !strings.Contains(raw, "://") {
		return address{}, errors.New("redis: URL has no scheme: want redis://, rediss:// or unix://")
	}
	u, err := cluster.ParseURL(raw)
	if err != nil {
		return address{}, fmt.Errorf("redis: URL %w", err)
	}
	a := address{scheme: u.Scheme}
	if u.User != nil {
		a.username = u.User.Username()
		a.password, _ = u.User.Password()
	}
	if u.Fragment != "" {
		return address{}, errors.New("redis: URL has a fragment (#…)")
	}
	switch u.Scheme {
	case "redis", "rediss":
		err = a.parseHost(u)
	case "unix":
		err = a.parseSocket(u)
	default:
		err = fmt.Errorf("redis: URL scheme %q is none of redis, rediss and unix", u.Scheme)
	}
	if err != nil {
		return address{}, err
	}
	return a, nil
}

func (a *address) parseHost(u *url.URL) error {
	a.network = "tcp"
	a.host = u.Hostname()
	if a.host == "" {
		return errors.New("redis: URL has no host")
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("redis: URL port %q is not a number from 1 to 65535", port)
	}
	a.addr = net.JoinHostPort(a.host, port)
	if len(u.Query()) != 0 {
		return errors.New("redis: a redis:// URL takes no query parameters (its database is the path, /N)")
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		return a.parseDB(db)
	}
	return nil
}

func (a *address) parseSocket(u *url.URL) error {
	a.network = "unix"
	if u.Host != "" {
		return fmt.Errorf("redis: unix URL has a host (%q): write unix:///absolute/path", u.Hostname())
	}
	if u.Path == "" {
		return errors.New("redis: unix URL has no socket path")
	}
	a.addr = u.Path
	q := u.Query()
	for name := range q {
		if name != "db" {
			return fmt.Errorf("redis: unknown unix URL parameter %q (only db)", name)
		}
	}
	if q.Has("db") {
		return a.parseDB(q.Get("db"))
	}
	return nil
}

func (a *address) parseDB(db string) error {
	n, err := strconv.Atoi(db)
	if err != nil || n < 0 {
		return fmt.Errorf("redis: URL database %q is not a number from 0 up", db)
	}
	a.db = n
	return nil
}

// String is the URL without user and password.
func (a address) String() string {
	if a.network == "unix" {
		return "unix://" + a.addr + "?db=" + strconv.Itoa(a.db)
	}
	return a.scheme + "://" + a.addr + "/" + strconv.Itoa(a.db)
}

package nats

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/wsbroker/wsbroker/cluster"
)

// servers is a parsed URL list: where to connect and how to log in.
type servers struct {
	urls  []string // scheme://host:port, without credentials
	tls   bool     // the scheme is tls://
	login credentials
}

// credentials are what a server is logged in with: a user and password, a token, or nothing.
type credentials struct {
	user, password, token string
}

// secrets are the strings no error or name may show.
func (c credentials) secrets() []string {
	var s []string
	for _, secret := range []string{c.password, c.token} {
		if secret != "" {
			s = append(s, secret)
		}
	}
	return s
}

const defaultPort = "4222"

// parseURLs reads a comma-separated list of nats://[user:password@|token@]host[:port] or tls://…
// (TLS); every URL has the same scheme, and those with credentials have the same ones. No error
// it returns contains a password or token.
func parseURLs(raw string) (servers, error) {
	var s servers
	var scheme string
	for i, one := range strings.Split(raw, ",") {
		one = strings.TrimSpace(one)
		u, login, err := parseURL(one)
		if err != nil {
			return servers{}, fmt.Errorf("nats: URL %d of the list: %w", i+1, err)
		}
		if scheme == "" {
			scheme = u.Scheme
		} else if u.Scheme != scheme {
			return servers{}, errors.New("nats: the URLs mix nats:// and tls://: use one scheme for all")
		}
		if login != (credentials{}) {
			if s.login != (credentials{}) && login != s.login {
				return servers{}, errors.New("nats: the URLs carry different credentials: give the same ones, or them in one URL only")
			}
			s.login = login
		}
		s.urls = append(s.urls, u.String())
	}
	s.tls = scheme == "tls"
	return s, nil
}

// parseURL reads one URL of the list into scheme://host:port and its credentials.
func parseURL(raw string) (*url.URL, credentials, error) {
	if raw == "" {
		return nil, credentials{}, errors.New("empty (two commas, or a comma at an end)")
	}
	if !strings.Contains(raw, "://") {
		return nil, credentials{}, errors.New("no scheme: want nats:// or tls://")
	}
	u, err := cluster.ParseURL(raw)
	if err != nil {
		return nil, credentials{}, err
	}
	if u.Scheme != "nats" && u.Scheme != "tls" {
		return nil, credentials{}, fmt.Errorf("scheme %q is neither nats nor tls", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return nil, credentials{}, errors.New("no host")
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, credentials{}, fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, credentials{}, errors.New("has a path, query or fragment: a NATS URL is scheme://[credentials@]host[:port]")
	}
	var login credentials
	if u.User != nil {
		if password, ok := u.User.Password(); ok {
			login.user, login.password = u.User.Username(), password
		} else {
			login.token = u.User.Username()
		}
		if login == (credentials{}) {
			return nil, credentials{}, errors.New("has an empty token before '@'")
		}
	}
	return &url.URL{Scheme: u.Scheme, Host: net.JoinHostPort(host, port)}, login, nil
}

// String is the URL list without credentials.
func (s servers) String() string { return strings.Join(s.urls, ",") }

package cluster

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ParseURL is url.Parse for an engine's URL, whose error never quotes the URL's user
// information: it may hold a password or a token.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err == nil {
		return u, nil
	}
	var parseErr *url.Error
	if !strings.Contains(raw, "@") && errors.As(err, &parseErr) {
		return nil, fmt.Errorf("does not parse: %w", parseErr.Err)
	}
	// The parser's message may quote part of the user information, so it is not repeated.
	return nil, errors.New("does not parse (check its user information, host and port)")
}

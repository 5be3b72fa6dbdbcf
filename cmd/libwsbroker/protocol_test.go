package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/wsbroker/wsbroker/internal/protocol"
)

// Every limit that start() checks (protocol.Limits, generated into js/protocol.gen.cts) is a field
// of the listen configuration that JavaScript sends.
func TestListenConfigHasEveryLimit(t *testing.T) {
	fields := map[string]bool{}
	typ := reflect.TypeFor[listenConfig]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		fields[name] = true
	}
	for _, l := range protocol.Limits() {
		if !fields[l.Option] {
			t.Errorf("listenConfig has no field for the limit %q", l.Option)
		}
	}
}

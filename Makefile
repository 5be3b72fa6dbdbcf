# The two commands of the README: `make example` and `make test`. Both install what they need.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: deps system-deps node-versions build lint test example

# npm ci without scripts: its install script would build the addon, which `build` does anyway.
deps: system-deps node_modules/.deps-installed

# The commands the build and the tests run, as path:Debian package: the C toolchain of node-gyp
# (also run by test/package.test.mjs's installs), openssl (test certificates), taskset (a server
# pinned to one core), python3, readelf (scripts/platforms.mjs), redis-cli (the Redis tests).
SYSTEM_TOOLS = /usr/bin/cc:gcc /usr/bin/g++:g++ /usr/bin/make:make /usr/bin/python3:python3 /usr/bin/openssl:openssl \
	/usr/bin/taskset:util-linux /usr/bin/readelf:binutils /usr/bin/redis-cli:redis-tools /usr/bin/tar:tar

# Debian packages of the tests: the commands of SYSTEM_TOOLS, Python's websockets client
# (test/conformance-python.test.mjs), Chromium (test/conformance-browser.test.mjs), redis-server
# (cluster/redis), nats-server (cluster/nats) and nginx (README's "Behind nginx"). apt runs only
# for what is missing; quiet unless it fails.
APT_INSTALL = { { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1); } >/tmp/wsbroker-apt.log 2>&1 || { cat /tmp/wsbroker-apt.log; exit 1; }; }
system-deps:
	@missing=$$(for t in $(SYSTEM_TOOLS); do test -x "$${t%%:*}" || echo "$${t#*:}"; done); [ -z "$$missing" ] || $(call APT_INSTALL,$$missing)
	@/usr/bin/python3 -c 'import websockets' 2>/dev/null || $(call APT_INSTALL,python3-websockets)
	@test -x /usr/bin/chromium || $(call APT_INSTALL,chromium)
	@test -x /usr/bin/redis-server || { $(call APT_INSTALL,redis-server); $(STOP_PACKAGED_REDIS); }
	@test -x /usr/sbin/nats-server || { $(call APT_INSTALL,nats-server); $(STOP_PACKAGED_NATS); }
	@test -x /usr/sbin/nginx || { $(call APT_INSTALL,nginx); $(STOP_PACKAGED_NGINX); }

# The Go tests of cluster/redis start their own redis-server; the package's daemon (started on 6379
# wherever invoke-rc.d allows it) is stopped and kept from starting at boot, so that no test reaches it.
STOP_PACKAGED_REDIS = { /etc/init.d/redis-server stop; update-rc.d redis-server disable; } >/dev/null 2>&1 || true
# The same for nats-server, whose package has only a systemd unit (started on 4222 where systemd runs).
STOP_PACKAGED_NATS = systemctl disable --now nats-server.service >/dev/null 2>&1 || true
# The same for nginx (the test runs its own, on a free port): its daemon would hold port 80.
STOP_PACKAGED_NGINX = { /etc/init.d/nginx stop; update-rc.d nginx disable; } >/dev/null 2>&1 || true

# Again whenever the npm or Go dependencies change.
node_modules/.deps-installed: package.json package-lock.json go.mod go.sum
	npm ci --ignore-scripts --no-audit --no-fund
	npm rebuild bun # its postinstall puts the Bun binary in place (test/bun.test.mjs)
	go mod download
	touch $@

# The Node versions that `npm test` runs the Node test suite on besides the system's, from the npm
# registry into .node/<major>/ (scripts/node-versions.mjs); nothing when they are there.
node-versions:
	node scripts/node-versions.mjs install

build: deps
	npm run build

# What `go generate ./...` writes from Go's definitions for the other languages (internal/protocol);
# lint fails when generating changes them, so that what is committed is what Go defines.
GENERATED = js/protocol.gen.cts napi/protocol.gen.h

lint:
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; cp $(GENERATED) "$$tmp"/ 2>/dev/null; \
	go generate ./... || exit 1; \
	for f in $(GENERATED); do cmp -s "$$f" "$$tmp/$$(basename "$$f")" || { echo "$$f was not what its Go definitions generate: run 'go generate ./...' (done now) and commit it"; exit 1; }; done
	@bad=$$(go tool goimports -l broker brokermetrics cluster internal cmd bench); if [ -n "$$bad" ]; then echo "not goimports-formatted (gofmt, and imports grouped): $$bad"; exit 1; fi
	go vet ./...
	go tool staticcheck ./...
	GOOS=darwin CGO_ENABLED=0 go vet ./broker/... ./cluster/... ./internal/... # the broker library builds for Go users on macOS (the fallback read path)

test: build lint node-versions
	npm test

example: build
	node lib/example/example.js

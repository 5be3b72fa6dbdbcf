# The two commands of the README: `make example` and `make test`. Both install what they need.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: deps build lint test example

# npm ci without scripts: its install script would build the addon, which `build` does anyway.
deps: node_modules/.deps-installed
node_modules/.deps-installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	go mod download
	touch $@

build: deps
	npm run build

lint:
	@bad=$$(gofmt -l broker cmd); if [ -n "$$bad" ]; then echo "not gofmt-formatted: $$bad"; exit 1; fi
	go vet ./...

test: build lint
	npm test

example: build
	node lib/example/example.js

# Thin targets; the work is in scripts/ (see each script's header).
.PHONY: run build test lint bench

run:
	go run ./cmd/invigil serve --dev

build:
	go build -trimpath -o bin/invigil ./cmd/invigil

test:
	bash scripts/test.sh

lint:
	bash scripts/lint.sh

bench:
	bash scripts/bench.sh

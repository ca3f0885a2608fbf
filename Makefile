# The two commands: `make dev` runs the suite locally; `make test` runs every test.
.PHONY: setup dev test unit standin integration wrapper lint contracts domain undomain bench seed-export screenshots clean

PY := .venv/bin/python
PYTEST_ARGS ?=

setup:
	@bash devtools/setup.sh

dev: setup
	@$(PY) -m devtools.suite start

# Runs side by side where nothing collides (-j2): the wrapper's tests (they start suites of
# their own) beside the unit tests, then the integration run beside the stand-in's tests,
# which end while its emulators still start. The integration run never shares the machine
# with the CPU-bound unit tests: its browser test timed out when it did. The wrapper's and
# the integration run's output streams; the others' is printed when they end (logged-%).
test: setup lint
	@$(MAKE) --no-print-directory -j2 wrapper logged-unit
	@$(MAKE) --no-print-directory -j2 integration logged-standin

# `make logged-X`: `make X` with its output kept in .run/logs/X.log and printed when it ends.
logged-%:
	@mkdir -p .run/logs; status=0; \
	$(MAKE) --no-print-directory $* > .run/logs/$*.log 2>&1 || status=$$?; \
	printf '\n--- make %s (.run/logs/%s.log) ---\n' $* $*; \
	cat .run/logs/$*.log; exit $$status

unit:
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

# The Stripe stand-in (devtools/stripe_standin.py) alone on a free port, against the real stripe SDK.
standin:
	$(PY) -m pytest tests/standin -q $(PYTEST_ARGS)

# The emulators serve .run/tree: this checkout plus a domain `make domain` generates there
# (devtools/suite.py); tests/integration/test_generated_domain.py runs its generated tests.
integration:
	$(PY) -m devtools.suite exec --generated-domain -- $(PY) -m pytest tests/integration -q --durations=20 $(PYTEST_ARGS)

# The wrapper's own tests start and stop suites themselves.
wrapper:
	$(PY) -m pytest tests/wrapper -q $(PYTEST_ARGS)

lint:
	$(PY) -m ruff check functions/flowsuite functions/main.py devtools tests bench testkit

# Regenerate docs/openapi.json, docs/events*, docs/collections.md from the code.
contracts: setup
	$(PY) -m devtools.contracts write
	$(PY) -m devtools.indexes

# Scaffold a new domain (docs/extending.md), or remove one that was scaffolded.
domain: setup
	@test -n "$(name)" || { echo "usage: make domain name=<lowercase_snake_name>"; exit 2; }
	$(PY) -m devtools.domain add $(name)

undomain: setup
	@test -n "$(name)" || { echo "usage: make undomain name=<name>"; exit 2; }
	$(PY) -m devtools.domain remove $(name)

bench: setup
	$(PY) -m bench

# Rebuild emulator-data/ (the seed) from devtools/seed.py.
seed-export: setup
	$(PY) -m devtools.seed export

# Refresh the console screenshots in docs/ from the last test run.
screenshots:
	cp .run/screenshots/*.png docs/console/

clean:
	rm -rf .run

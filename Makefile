# The two commands of the README: `make demo` and `make test`. Everything else is a step of those.
.PHONY: demo test setup setup-system setup-python lint clean

demo: setup-python
	.venv/bin/codat-exporter run --demo

test: setup
	scripts/test.sh

setup: setup-system setup-python

setup-system:
	scripts/bootstrap-system.sh

setup-python:
	scripts/bootstrap-python.sh

lint: setup-python
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

clean:
	rm -rf .venv build *.egg-info .mypy_cache .ruff_cache .pytest_cache

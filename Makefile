# The two commands of the README: `make demo` and `make test`. Everything else is a step of those.
.PHONY: demo test setup setup-system setup-python setup-runtime lint rules dashboards schema clean

# The demo needs the runtime dependencies only; the test and lint tools come with `make test`.
demo: setup-runtime
	.venv/bin/codat-exporter run --demo

test: setup
	scripts/test.sh

setup: setup-system setup-python

setup-system:
	scripts/bootstrap-system.sh

# .venv with the exporter and its runtime dependencies (codat-exporter in .venv/bin).
setup-runtime:
	scripts/bootstrap-python.sh runtime

# .venv with the runtime dependencies plus the test and lint tools.
setup-python:
	scripts/bootstrap-python.sh dev

lint: setup-python
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

# Regenerate the shipped PrometheusRule and Grafana dashboards from their sources.
rules: setup-runtime
	.venv/bin/python -m deploy.kubernetes.generate_prometheusrule

dashboards: setup-runtime
	.venv/bin/python -m grafana.build

# Regenerate config.schema.json from the config model.
schema: setup-runtime
	.venv/bin/python -m exporter.config.schema_export

clean:
	rm -rf .venv build *.egg-info .mypy_cache .ruff_cache .pytest_cache

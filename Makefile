.PHONY: demo test lint bench
demo:
	./scripts/demo
test:
	./scripts/test
lint:
	.venv/bin/ruff check src tests bench && .venv/bin/ruff format --check src tests bench && .venv/bin/mypy

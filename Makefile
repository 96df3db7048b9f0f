# Two entry points: `make book` (execute notebooks + build the book) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= cpu
export MPLBACKEND := Agg

.PHONY: book test env chromium benchmarks clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e .
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	touch $@

# The book test opens the rendered pages in headless Chromium (Debian package).
chromium:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

test: env chromium
	$(BIN)/python -m pytest

# Only PROFILE=cpu (the published book) writes book/; smoke and paper build in _build/profiles/$(PROFILE)/.
book: env
	$(BIN)/python -m rplib.book execute --profile $(PROFILE)
	$(BIN)/jupyter-book build "$$($(BIN)/python -m rplib.book root --profile $(PROFILE))" --warningiserror --keep-going

benchmarks: env
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf _build

# Two entry points: `make book` (execute notebooks + build the book) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= cpu
export MPLBACKEND := Agg
# Where the book's runs execute: auto (serial for one unfinished run, else one process per core or GPU),
# serial, local, slurm or dask; see book/reproduce.md. An RPLIB_EXECUTOR in the environment is kept.
EXECUTOR ?= $(or $(RPLIB_EXECUTOR),auto)

.PHONY: book test env lock chromium fashion-mnist benchmarks clean

env: $(VENV)/.installed

# The environment is installed from requirements.lock (every package pinned, with hashes) by uv, itself
# pinned with hashes in requirements-installer.lock; pyproject.toml holds the lower bounds.
# `make lock` regenerates both from pyproject.toml (preferring the versions already locked).
# Bytecode is compiled at install: a Python that does not write it (PYTHONDONTWRITEBYTECODE, read-only
# trees) would otherwise compile torch & co. from source in every process, about 5 s more per start-up.
$(VENV)/.installed: requirements.lock requirements-installer.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --require-hashes -r requirements-installer.lock
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --require-hashes -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q rplib
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 >/dev/null
	touch $@

lock:
	$(PYTHON) -m venv .venv-tools
	.venv-tools/bin/pip install --require-hashes -r requirements-installer.lock
	echo "uv" | .venv-tools/bin/uv pip compile - --universal --generate-hashes --python-version 3.11 \
		--no-header --output-file requirements-installer.lock.new
	{ echo "# The installer make env uses (uv), pinned with hashes; regenerate with make lock."; \
		cat requirements-installer.lock.new; } > requirements-installer.lock && rm requirements-installer.lock.new
	.venv-tools/bin/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 \
		--constraint torch-pins.txt --output-file requirements.lock

# The book test opens the rendered pages in headless Chromium (Debian package).
chromium:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

test: env chromium
	$(BIN)/python -m pytest

# Fashion-MNIST for PROFILE=images: Debian's dataset-fashion-mnist, installed here when run as root.
fashion-mnist:
	@test -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz || \
		if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y --no-install-recommends dataset-fashion-mnist; \
		else echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist'" \
			"(or stage its four files in data/fashion-mnist)"; exit 1; fi

# PROFILE=cpu (the published book) writes book/, PROFILE=images its part book/images/; smoke and paper build in
# _build/profiles/$(PROFILE)/.
book: env $(if $(filter images,$(PROFILE)),fashion-mnist)
	RPLIB_EXECUTOR=$(EXECUTOR) $(BIN)/python -m rplib.book execute --profile $(PROFILE)
	$(BIN)/jupyter-book build "$$($(BIN)/python -m rplib.book root --profile $(PROFILE))" --warningiserror --keep-going

benchmarks: env
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf _build

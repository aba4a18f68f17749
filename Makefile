# Two commands for a newcomer: `make demo` runs the default profile, `make test` runs every check.
# Both create .venv on first use.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
export MPLBACKEND := Agg
# Two CPU threads per process match the development machines; override on bigger ones.
export OMP_NUM_THREADS ?= 2

.PHONY: demo test bench bench-e2e readme check-sync clean-venv

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --quiet -c constraints.txt -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

demo: $(VENV)/.installed
	$(BIN)/steernb-run --profile mnist5k

# README.md is nbs/index.ipynb, executed so it shows the current reports/mnist5k table, then rendered to markdown.
readme: $(VENV)/.installed
	cd nbs && ../$(BIN)/jupyter nbconvert --to notebook --execute --inplace index.ipynb
	$(BIN)/nbdev_clean --fname nbs/index.ipynb
	$(PY) tools/render_readme.py nbs/index.ipynb README.md

# nbdev_clean, nbdev_export and the README render must leave every file as it was.
check-sync: $(VENV)/.installed
	@before=$$(find nbs steernb README.md -type f -not -path '*/__pycache__/*' | sort | xargs sha256sum); \
	$(BIN)/nbdev_clean >/dev/null && $(BIN)/nbdev_export && $(PY) tools/render_readme.py nbs/index.ipynb README.md || exit 1; \
	after=$$(find nbs steernb README.md -type f -not -path '*/__pycache__/*' | sort | xargs sha256sum); \
	if [ "$$before" != "$$after" ]; then \
	  echo "Notebooks are not clean or steernb/ and README.md are out of sync with them:"; \
	  diff <(echo "$$before") <(echo "$$after"); \
	  echo "Run 'make check-sync' and commit the changed files."; exit 1; \
	fi; echo "notebooks clean, steernb/ and README.md in sync"

# Notebooks and tests use a throw-away cache, so they neither read nor fill the user's.
test: $(VENV)/.installed check-sync
	cache=$$(mktemp -d) && trap 'rm -rf "$$cache"' EXIT && \
	STEERNB_CACHE=$$cache STEERNB_PROGRESS=0 $(BIN)/nbdev_test --n_workers 1 && \
	$(BIN)/pytest -q

bench: $(VENV)/.installed
	$(PY) -m pip install --quiet --quiet -c constraints.txt -e '.[bench]'
	$(PY) bench/run_all.py

# The default profile end to end from an empty cache, as on a fresh machine; rewrites reports/mnist5k.
bench-e2e: $(VENV)/.installed
	$(PY) bench/run_all.py end_to_end

clean-venv:
	rm -rf $(VENV)

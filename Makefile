# The two commands a fresh machine needs: `make run` and `make test`. Everything else is their parts.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
# pip on some machines warns about every configured-but-absent local index; keep real errors only.
QUIET_PIP := { grep -v 'is ignored' || true; }

.PHONY: run test install testkit lint bench clean help

help:
	@echo "make run      create the venv, install, start charter-tui (with a local vLLM CPU server unless the config names targets)"
	@echo "make test     create everything the tests need (venv, vLLM/Triton test kits) and run the whole suite"
	@echo "make testkit  build (or reuse) the real-peer test kits under the XDG cache dir"
	@echo "make lint     ruff (lint and format), the import contracts and mypy (run by make test)"

$(BIN)/charter-tui: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip install --quiet -e '.[test]' 2>&1 | $(QUIET_PIP)
	@test -x $(BIN)/charter-tui || { echo "install failed: $(BIN)/charter-tui missing" >&2; exit 1; }
	@touch $@

install: $(BIN)/charter-tui

testkit:
	bash scripts/build-vllm-kit.sh
	@if [ -f scripts/build-triton-kit.sh ]; then bash scripts/build-triton-kit.sh; fi
	bash scripts/build-prometheus-kit.sh >/dev/null

LINT_PATHS := charter_tui executor testkit daemon compiler benchmarks tests scripts

# The house rules as code: lint findings and broken import contracts (pyproject.toml
# [tool.importlinter]: floors charter_tui -> daemon -> compiler, no Textual in the daemon, no I/O in the
# compiler) fail the build.
lint: install
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

test: install lint testkit
	$(BIN)/python -m pytest $(PYTEST_ARGS)

run: install
	bash scripts/build-vllm-kit.sh >/dev/null
	$(BIN)/charter-tui demo

bench: install testkit
	@ls benchmarks/*.py

clean:
	rm -rf $(VENV) .pytest_cache

# Mutation testing of the modules users' safety rests on ([tool.mutmut] in pyproject.toml): by hand,
# too slow for every CI run. MUTANTS narrows it (e.g. MUTANTS='daemon.collectors.window*'); the
# summary and every survivor go to mutants/report.md, to be reviewed into docs/mutation.md.
MUTATION_JOBS ?= 1
MUTANTS ?=
.PHONY: mutation
mutation: install
	$(BIN)/python -m pip install --quiet 'mutmut==3.8.1' 2>&1 | $(QUIET_PIP)
	rm -rf mutants && mkdir mutants
	$(BIN)/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS) > mutants/run.log 2>&1 || { tail -40 mutants/run.log >&2; exit 1; }
	$(BIN)/python scripts/mutation_report.py > mutants/report.md
	@head -20 mutants/report.md
	@echo "full list: mutants/report.md; run log: mutants/run.log"

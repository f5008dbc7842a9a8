# The README's two commands with their set-up included: `make run` (the main job) and `make test`.
# Each creates .venv if it is missing and installs into it exactly what the README's Install section does
# by hand, but only when needed: a stamp file inside .venv records the last install and is older than
# any source it depends on after an edit, so a changed source reinstalls the package (and nothing else).
#
#   make run  [ARGS="--out /tmp/x"]      s4op run, in .venv
#   make test [ARGS="tests/ops -q"]      pytest from the repository root, in .venv
#   make clean                           remove build/ and .venv
#   make help

PYTHON ?= python3
# Pinned and installed first, as in the README: an unpinned resolve of "torch" by the package's
# dependencies can pull a multi-GB CUDA build.  On a machine that resolves against public PyPI only, ask
# for the CPU wheel with TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu".
TORCH ?= torch==2.13.0
TORCH_PIP_ARGS ?=
ARGS ?=

# Recipes run from the repository root wherever make is called from (make -C, make -f): pytest must
# start there (tests/conftest.py and pyproject's pytest settings), and `pip install .` builds from there.
ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
VENV ?= $(ROOT)/.venv
BIN := $(VENV)/bin
TORCH_STAMP := $(VENV)/.s4op-torch-installed
STAMP := $(VENV)/.s4op-installed
# As after `. .venv/bin/activate` in the README: the venv's scripts first on PATH (tests start `s4op` by name).
IN_VENV := PATH="$(BIN):$$PATH" VIRTUAL_ENV="$(VENV)"

# What the installed package is built from.  The install is not editable (tests/conftest.py refuses the
# source tree, and `pip install .` is what users do), so the Python sources count as much as the C++ ones:
# without them, `make test` after a .py edit would test the previously installed copy.
SOURCES := $(addprefix $(ROOT)/,pyproject.toml CMakeLists.txt csrc/CMakeLists.txt python/module.cpp) \
	$(wildcard $(ROOT)/csrc/include/s4op/*.h $(ROOT)/csrc/src/*.cpp $(ROOT)/csrc/src/*.h $(ROOT)/csrc/runtime/*.cpp) \
	$(shell find "$(ROOT)/s4op_kernels" -name '*.py' -o -name '*.pyi' 2>/dev/null)

.PHONY: help run test install clean
.DEFAULT_GOAL := help

help:
	@echo "make run  [ARGS=...]  set up .venv if needed, then run the main job: s4op run ARGS"
	@echo "make test [ARGS=...]  set up .venv if needed, then run the tests: pytest ARGS (from the repository root)"
	@echo "make install          set up .venv only: $(TORCH), then the package (pip install \".[test]\")"
	@echo "make clean            remove build/ and $(VENV)"
	@echo "Variables: PYTHON=$(PYTHON) (makes the venv), TORCH=$(TORCH), TORCH_PIP_ARGS=$(TORCH_PIP_ARGS)"
	@echo "The package is reinstalled when pyproject.toml, CMake files, csrc/, python/ or s4op_kernels/ change."

# Relative paths in ARGS (e.g. --out) are taken from the repository root, like the default ./s4op-run.
run: $(STAMP)
	cd "$(ROOT)" && $(IN_VENV) $(BIN)/s4op run $(ARGS)

test: $(STAMP)
	cd "$(ROOT)" && $(IN_VENV) $(BIN)/pytest $(ARGS)

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv "$(VENV)"

# The Makefile is a prerequisite so that a changed TORCH pin is installed.
$(TORCH_STAMP): $(BIN)/python $(ROOT)/Makefile
	$(BIN)/python -m pip install $(TORCH_PIP_ARGS) "$(TORCH)"
	touch $@

# The stamp gets the time the install *started* (touched first, renamed on success), so a source edited
# while pip was building is still newer than the stamp and reinstalls next time; a failed install
# leaves no stamp and is retried.
$(STAMP): $(TORCH_STAMP) $(SOURCES)
	touch $@.new
	cd "$(ROOT)" && $(BIN)/python -m pip install ".[test]"
	mv $@.new $@

clean:
	rm -rf "$(ROOT)/build" "$(VENV)"

# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install demo test lint lock clean

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -r requirements/lock.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mscl prepare --synthetic --preset quick --out $(DEMO_DIR)/data/quick --overwrite
	@echo "demo dataset: $(DEMO_DIR)/data/quick"

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Regenerate the pinned lock from the current environment (after changing pyproject dependencies).
lock: $(STAMP)
	$(PIP) freeze --exclude-editable | sed -e 's/^torch==.*/torch==2.13.0/' > requirements/lock.txt

clean:
	rm -rf $(VENV) $(DEMO_DIR)

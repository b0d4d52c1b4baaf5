"""Poster throughput: the pipeline end to end against the bare forward pass, and the original loop.

Measured side by side in one process, on the same posters and the same weights:

- end to end: m3l's runner as extract_images.py drives it (decoding and preprocessing in
  `--workers` loader processes, batches of `--batch-size`, JSON files and logs written),
  with the weights already in memory, so that loading from disk is not counted;
- bare forward: each model's `embed` on the same posters already decoded and preprocessed
  into tensors, in the same batches: the floor the pipeline can approach;
- one at a time: the original script's loop, model by model and poster by poster: open,
  convert to RGB, preprocess, a forward pass of one (clip through SentenceTransformer.encode).

The store holds random weights in the real architectures (CLIP ViT-B/32 image tower,
ViT-B/16 with pooler, vgg16), unless --models-dir names a real store. Every figure is the
median of --repeats runs, interleaved. Usage:

    .venvs/image/bin/python bench/bench_images.py [--posters 64] [--models clip-image,vgg,vit]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from PIL import Image

from common import median_seconds, parser, print_table
from m3l import models
from m3l.engines import ENGINES, run
from m3l.media.image import PosterLoader, read_poster
from m3l.modalities import MODALITIES
from m3l.store.writer import FeatureStore
from tests.testlib import skimage_photo

POSTER_SIZE = (500, 750)  # a typical MovieLens/TMDB poster


def make_posters(folder: Path, count: int) -> Path:
    """`count` JPEG posters of poster size, cut from scikit-image's photos."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = [Image.open(skimage_photo(name)).convert("RGB") for name in ("astronaut.png", "chelsea.png",
                                                                          "coffee.png", "rocket.jpg")]
    for index in range(count):
        photo = photos[index % len(photos)].rotate(7 * index, expand=True)
        photo.resize(POSTER_SIZE, Image.BICUBIC).save(folder / f"{index + 1}.jpg", quality=90)
    return folder


def build_store(root: Path, names: list[str], tiny: bool) -> Path:
    """Random weights for `names` in the store's formats: the tests' tiny models, enlarged to the
    real architectures unless `tiny`."""
    from tests.image.stores import add_vgg, add_vit
    from tests.stores import add_clip

    if "vgg" in names:
        add_vgg(root)
    if "vit" in names:
        vit = add_vit(root)
        if not tiny:
            _enlarge_vit(vit)
    if "clip-image" in names:
        clip = add_clip(root)
        if not tiny:
            _enlarge_clip_vision(clip / "0_CLIPModel")
    return root


def _enlarge_vit(folder: Path) -> None:
    """ViT-B/16 as published: 12 layers of 768, with the pooler."""
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(architectures=["ViTModel"])
    config.to_json_file(folder / "config.json")
    torch.save(ViTModel(config).state_dict(), folder / "pytorch_model.bin")


def _enlarge_clip_vision(folder: Path) -> None:
    """The image tower of CLIP ViT-B/32 (12 layers of 768, 32-pixel patches); the text tower stays tiny."""
    from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig

    config = CLIPConfig.from_pretrained(folder)
    config.vision_config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                            num_attention_heads=12, image_size=224, patch_size=32)
    config.save_pretrained(folder)
    for stale in folder.glob("model*.safetensors"):
        stale.unlink()
    torch.save(CLIPModel(config).state_dict(), folder / "pytorch_model.bin")


def load_encoders(store: Path, names: list[str]) -> list:
    encoders = []
    for info in models.resolve(names, "image"):
        encoder = models.encoder_class(info)(info, [store / entry.path for entry in info.files], "cpu")
        encoder.load()
        encoder.load = lambda: None  # the weights are in memory: time the pipeline, not the disk
        encoders.append(encoder)
    return encoders


def end_to_end(posters: Path, encoders: list, output: Path, batch_size: int, workers: int) -> None:
    catalogue = MODALITIES["image"].read_catalogue(posters)
    stores = {e.info.folder: FeatureStore(output, e.info) for e in encoders}
    run(ENGINES["local"], catalogue.items, PosterLoader(), encoders, stores, batch_size, workers)
    assert all(store.summary.done == len(catalogue.items) for store in stores.values())


def bare_forward(tensors: dict[str, list[torch.Tensor]], encoders: list, batch_size: int) -> None:
    for encoder in encoders:
        samples = tensors[encoder.info.folder]
        for start in range(0, len(samples), batch_size):
            encoder.embed(samples[start:start + batch_size])


def sentence_transformers_clip(encoders: list, store: Path):
    """The original loop's CLIP: SentenceTransformer.encode, loaded once before any timing."""
    if not any(e.info.name == "clip-image" for e in encoders):
        return None
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(store / "sentence-transformers/clip-ViT-B-32"), device="cpu",
                               local_files_only=True, processor_kwargs={"backend": "pil"})


def one_at_a_time(posters: Path, encoders: list, clip, output: Path) -> None:
    """The original loop: per model, per poster: open, RGB, preprocess, forward of one, write."""
    files = sorted(posters.iterdir())
    for encoder in encoders:
        (output / encoder.info.folder).mkdir(parents=True, exist_ok=True)
        for file in files:
            image = Image.open(file).convert("RGB")
            if encoder.info.name == "clip-image":
                vector = clip.encode(image)
            else:
                vector = encoder.embed(encoder.preprocess(read_poster(file)))[0]
            (output / encoder.info.folder / f"{file.stem}.json").write_text(json.dumps({file.stem: vector.tolist()}))


def main() -> None:
    options = parser(__doc__.split("\n")[0], workers=2)
    options.add_argument("--posters", type=int, default=64)
    options.add_argument("--models", default="clip-image,vgg,vit")
    options.add_argument("--models-dir", type=Path, help="a real model store (default: random real-size weights)")
    options.add_argument("--batch-size", type=int, default=32)
    options.add_argument("--skip-loop", action="store_true", help="leave out the one-at-a-time loop")
    options.add_argument("--tiny-models", action="store_true",
                         help="keep the tests' small random models (a quick check that the benchmark runs)")
    args = options.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        names = args.models.split(",")
        store = args.models_dir or build_store(tmp / "models", names, args.tiny_models)
        posters = make_posters(tmp / "posters", args.posters)
        encoders = load_encoders(store, names)
        tensors = {e.info.folder: [e.preprocess(read_poster(f))[0] for f in sorted(posters.iterdir())]
                   for e in encoders}
        clip = sentence_transformers_clip(encoders, store)
        contenders = {
            "end to end": lambda repeat: end_to_end(posters, encoders, tmp / f"e2e{repeat}", args.batch_size,
                                                    args.workers),
            "bare forward": lambda _: bare_forward(tensors, encoders, args.batch_size),
            "one at a time": lambda repeat: one_at_a_time(posters, encoders, clip, tmp / f"loop{repeat}"),
        }
        if args.skip_loop:
            del contenders["one at a time"]
        medians = median_seconds(contenders, args.repeats)

    print(f"{args.posters} posters of {POSTER_SIZE[0]}x{POSTER_SIZE[1]}, models {args.models}, "
          f"batch {args.batch_size}, {args.workers} workers, {torch.get_num_threads()} torch threads, "
          f"median of {args.repeats}")
    print_table(medians, args.posters, "posters")
    overhead = medians["end to end"] / medians["bare forward"]
    print(f"  end to end / bare forward time: {overhead:.3f} (pipeline overhead {100 * (overhead - 1):+.1f}%)")
    if "one at a time" in medians:
        print(f"  end to end speed-up over one at a time: {medians['one at a time'] / medians['end to end']:.2f}x")


if __name__ == "__main__":
    main()

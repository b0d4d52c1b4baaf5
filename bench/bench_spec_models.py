"""Spec model throughput: the pipeline end to end against the bare forward pass, one modality per run.

    .venvs/<modality>/bin/python bench/bench_spec_models.py --modality text|image|audio|video [--items N]

Measured side by side in one process, on the same items and weights, as bench_images.py does:

- end to end: m3l's runner as the extract scripts drive it (decoding and preprocessing in
  `--workers` loader processes, batches, JSON files and logs), the weights already loaded;
- bare forward: the encoder's `embed` on the same items already decoded and preprocessed,
  in the same batches: the floor the pipeline can approach.

Models (real sizes, random weights, saved in the hub's layout; text uses the real MiniLM):
st:sentence-transformers/all-MiniLM-L6-v2, hf-image:facebook/dinov2-small,
hf-audio:openai/whisper-tiny, hf-video:MCG-NJU/videomae-small-finetuned-kinetics.
Every figure is the median of --repeats runs, interleaved.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO), str(REPO / "bench")]

import torch  # noqa: E402

from m3l import models  # noqa: E402
from m3l.cli import build_parser  # noqa: E402
from m3l.engines import ENGINES, run  # noqa: E402
from m3l.media import LoaderOptions  # noqa: E402
from m3l.modalities import MODALITIES  # noqa: E402
from m3l.store.writer import FeatureStore  # noqa: E402

SPECS = {"text": "st:sentence-transformers/all-MiniLM-L6-v2", "image": "hf-image:facebook/dinov2-small",
         "audio": "hf-audio:openai/whisper-tiny", "video": "hf-video:MCG-NJU/videomae-small-finetuned-kinetics"}
IMAGENET = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


def build_model(folder: Path, modality: str) -> None:
    """The spec's checkpoint at its real size with random weights, as the hub serves it."""
    import transformers as tf

    torch.manual_seed(0)
    if modality == "text":
        from tests.stores import minilm_source

        folder.parent.mkdir(parents=True)
        folder.symlink_to(minilm_source())
        return
    if modality == "image":
        model = tf.Dinov2Model(tf.Dinov2Config(hidden_size=384, num_attention_heads=6))
        processor = tf.BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                                         **IMAGENET)
    elif modality == "audio":
        model = tf.WhisperModel(tf.WhisperConfig(d_model=384, encoder_layers=4, decoder_layers=4,
                                                 encoder_attention_heads=6, decoder_attention_heads=6,
                                                 encoder_ffn_dim=1536, decoder_ffn_dim=1536))
        processor = tf.WhisperFeatureExtractor()
    else:
        model = tf.VideoMAEModel(tf.VideoMAEConfig(hidden_size=384, num_attention_heads=6, intermediate_size=1536))
        processor = tf.VideoMAEImageProcessor(**IMAGENET)
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)


def make_items(root: Path, modality: str, count: int) -> Path:
    """Plots, posters or trailers as the other benchmarks make them."""
    if modality == "text":
        from bench_text import plots

        path = root / "plots.tsv"
        path.write_text("movie_id\tplot\n" + "".join(f"{i}\t{p}\n" for i, p in enumerate(plots(count), start=1)))
        return path
    if modality == "image":
        from bench_images import make_posters

        return make_posters(root / "posters", count)
    if modality == "audio":
        from bench_audio import build_trailers

        return build_trailers(root, count, seconds=30)
    from bench_video import build_trailers

    return build_trailers(root, count, loops=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modality", choices=tuple(SPECS), required=True)
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    modality = MODALITIES[options.modality]
    info = models.resolve([SPECS[options.modality]], modality.name)[0]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_model(tmp / "models" / info.files[0].path, modality.name)
        source = make_items(tmp, modality.name, options.items)
        argv = [modality.input_flag, str(source), "--models", info.name, "--device", "cpu"]
        argv += [*(["--batch-size", str(options.batch_size)] if options.batch_size else []),
                 *(["--workers", str(options.workers)] if options.workers is not None else [])]
        args = build_parser(modality, [], "").parse_args(argv)
        workers = ENGINES["local"].workers(args.workers, modality, "cpu")
        encoder = models.encoder_class(info)(info, [tmp / "models" / info.files[0].path], "cpu")
        encoder.load()
        encoder.load = lambda: None  # the weights are in memory: time the pipeline, not the disk
        items = modality.read_catalogue(source).items
        loader = modality.make_loader([encoder], LoaderOptions.of(args))
        samples = [sample for item in items for sample in encoder.preprocess(loader(item))]
        times: dict[str, list[float]] = {"end to end": [], "bare forward": []}
        for repeat in range(options.repeats):
            stores = {encoder.info.folder: FeatureStore(tmp / f"out{repeat}", encoder.info)}
            started = time.perf_counter()
            run(ENGINES["local"], items, loader, [encoder], stores, args.batch_size, workers)
            times["end to end"].append(time.perf_counter() - started)
            assert stores[encoder.info.folder].summary.done == len(items)
            started = time.perf_counter()
            for start in range(0, len(samples), args.batch_size):
                encoder.embed(samples[start:start + args.batch_size])
            times["bare forward"].append(time.perf_counter() - started)

    print(f"{len(items)} {modality.name} items ({len(samples)} samples), {info.name} ({encoder.info.dim}-d), "
          f"batch {args.batch_size}, {workers} workers, {torch.get_num_threads()} torch threads, CPU, "
          f"median of {options.repeats}")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in medians.items():
        print(f"  {name:13s} {seconds:7.2f} s  {len(items) / seconds:7.2f} items/s")
    print(f"  end to end / bare forward throughput: {medians['bare forward'] / medians['end to end']:.2f}")


if __name__ == "__main__":
    main()

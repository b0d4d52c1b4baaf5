"""What the recipes read from each trailer, as digests (run in the video venv, which has PyAV and m3l's decoders):

    .venvs/video/bin/python -m tests.download.decoded TRAILER [TRAILER ...]

prints one JSON object: per trailer, the video frames the recipe keeps (stored timestamps and pixel
hashes, m3l.media.video's selection: presentation order, pts up to 30 s) and the soundtrack
(m3l.media.audio's first 30 s of 16 kHz mono).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from m3l.media.audio import decode_soundtrack
from m3l.media.container import open_media
from m3l.media.video import _frames_until_done


def digest(path: Path) -> dict:
    with open_media(path) as container:
        stream = container.streams.video[0]
        frames = [[frame.pts, hashlib.sha256(frame.to_ndarray(format="rgb24").tobytes()).hexdigest()]
                  for frame in _frames_until_done(container, stream, 10**6, [])]
        time_base = str(stream.time_base)
    waveform = decode_soundtrack(path).waveform
    return {"time_base": time_base, "frames": frames, "samples": len(waveform),
            "waveform": hashlib.sha256(waveform.tobytes()).hexdigest()}


if __name__ == "__main__":
    print(json.dumps({name: digest(Path(name)) for name in sys.argv[1:]}))

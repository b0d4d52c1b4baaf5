"""extract_audio.py with --engine ray on the bundled trailers: the local engine's outputs."""

from tests.raylib import assert_engines_agree


def test_ray_engine_writes_what_the_local_engine_writes(tmp_path, audio_store, ray_cluster):
    assert assert_engines_agree("audio", audio_store, tmp_path) == ["audio_ast", "audio_vggish", "audio_whisper"]

"""m3l: movie plots, posters and trailers → feature vectors with twelve pretrained encoders."""

__version__ = "0.1.0"

"""m3l: movie plots, posters and trailers → feature vectors with twelve pretrained encoders."""

from m3l.readers.features import as_dataframe, list_models, load_features, provenance

__all__ = ["as_dataframe", "list_models", "load_features", "provenance"]
__version__ = "0.1.0"

"""Getting the media: from link files to the folders and catalogues the extractors read (docs/media.md).

The first stage of the data flow, before the catalogue: `http` fetches one URL with the
guarantees every download needs, `posters` fills a poster folder, `tmdb` turns MovieLens
ids into plots and link files, `trailers` fills a trailer folder with yt-dlp, `run` keeps the
per-id log, summary and settings of a download run.
"""

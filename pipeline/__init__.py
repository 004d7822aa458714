"""Domain code of the papers pipeline: sources, parsing, validation, resolution, storage, release.

Free of Dagster: every stage is a plain function over Polars frames and files under the data directory.
"""

"""The Dagster layer: assets, checks, resources and the `Definitions` (see `assets.definitions`)."""

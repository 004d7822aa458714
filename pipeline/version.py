"""The version of this code, as installed (written into manifests and the User-Agent)."""

from importlib import metadata


def code_version() -> str:
    try:
        return metadata.version("hf-papers-pipeline")
    except metadata.PackageNotFoundError:
        return "unknown"

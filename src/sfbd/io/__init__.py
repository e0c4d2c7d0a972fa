"""Files: atomic writes, checkpoints, the manifest, the download cache and the run log."""

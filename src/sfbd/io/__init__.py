"""Files: atomic writes, memory-mapped sample arrays, .npz members, disk-space checks,
checkpoints, the manifest, the download cache and the run log."""

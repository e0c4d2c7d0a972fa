"""A run: the resumable stage loop over a method, in a run directory."""

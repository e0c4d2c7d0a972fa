"""Training: the step loop, its state, the data it draws from, and augmentation."""

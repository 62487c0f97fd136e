"""Training: DeepSpeed pre-training from a TrainingJob to checkpoints and an export."""

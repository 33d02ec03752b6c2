"""Training machinery shared by pre-training and fine-tuning: loop, checkpoints, devices, DDP."""

"""Dataset fingerprint: the per-case and per-channel statistics every planning decision rests on."""

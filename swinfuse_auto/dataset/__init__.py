"""The raw dataset: dataset.json schema, case discovery and verification."""

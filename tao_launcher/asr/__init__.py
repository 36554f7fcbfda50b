"""The ASR layer beside ``nlp/``: audio files, NeMo manifests and transcripts (no transformers here)."""

"""tao: a zero-coding command line for training and exporting conversational-AI models."""

__version__ = "0.1.0"

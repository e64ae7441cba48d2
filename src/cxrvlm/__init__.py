"""cxrvlm: one multi-task vision-language model for chest X-ray interpretation."""
__version__ = "0.1.0"
NOTICE = "Research use only. Not a diagnosis."

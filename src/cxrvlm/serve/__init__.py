"""The HTTP API and web page: `cxrvlm serve` (app.py: the FastAPI app; command.py: the command)."""

"""The HTTP API (FastAPI): one app for uvicorn locally and Mangum on Lambda."""

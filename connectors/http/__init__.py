"""HTTP ingestion: feedback forms and the events API (FastAPI + uvicorn)."""

"""ur4rec: LLM-enhanced reranking for recommendation through user preference retrieval (UR4Rec)."""

__version__ = "0.1.0"

"""Frozen-encoder vectors for LLM and raw texts, stored as memory-mapped safetensors shards.

Training reads them through `ur4rec.encode.store.EmbeddingStore`; the stage entry point is
`ur4rec.encode.encode.encode_dataset`.
"""

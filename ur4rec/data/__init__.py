"""Raw datasets into leak-free reranking samples.

Loaders (one module per raw format) turn published files into one normalised schema (`schema.RawDataset`);
`prepare.prepare_dataset` filters, splits and samples them into `data/<name>/prepared/`. Nothing here knows
about LLMs or models.
"""

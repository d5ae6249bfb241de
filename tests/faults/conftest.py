"""The fault suite reuses the retriever tests' tiny prepared, encoded and Base-trained project."""

from tests.retriever.conftest import _one_torch_thread, tiny_bert, tiny_project  # noqa: F401

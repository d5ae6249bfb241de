"""The names of the raw formats (`dataset.<name>.format`), importable without the loaders themselves, so
checking params does not make every stage depend on every loader's code. `registry.FORMATS` implements
exactly these (a test keeps the two equal)."""

FORMAT_NAMES = ("ml-100k", "ml-1m", "amazon2018", "steam", "generic")

"""Use cases: the one layer that combines storage, catalog, cache and media; every door calls it."""

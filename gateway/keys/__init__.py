"""Keys: the model, value handling, validation rules, the cache and the service."""

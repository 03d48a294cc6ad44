"""The zarr trajectory store, its samplers and converters."""

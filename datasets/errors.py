"""Errors of the trajectory store. Each message names the problem and the fix."""


class StoreError(Exception):
    """Base class: anything wrong with a store, its input or its use."""


class NotAStoreError(StoreError):
    pass


class FormatVersionError(StoreError):
    pass


class SpecMismatchError(StoreError, ValueError):
    pass


class StoreLockedError(StoreError):
    pass


class UncommittedTailError(StoreError):
    pass


class CorruptChunkError(StoreError):
    pass

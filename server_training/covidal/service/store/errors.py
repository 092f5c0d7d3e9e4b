"""Errors of the project store, one class per HTTP status the service answers with.

Every message names the id, field or value at fault, so the service can pass it
on to the clinician unchanged.
"""

from __future__ import annotations

from covidal.errors import CovidalError


class StoreError(CovidalError):
    """A request the store cannot carry out (base class; maps to 500 when nothing more specific applies)."""


class NotFound(StoreError):
    """An id that does not exist, or belongs to another project (404)."""


class Conflict(StoreError):
    """A request that contradicts the stored state: a name taken, a region already answered,
    an idempotency key reused for another answer, a job in the wrong status (409)."""


class Invalid(StoreError):
    """A value that can never be accepted: a point outside its region, a negative effort, an upload too large (422)."""


class LeaseError(StoreError):
    """The region is leased to another annotator, or the caller's lease expired and was taken over (409)."""


class Busy(StoreError):
    """Another writer kept the database locked longer than the busy timeout (503: retry later)."""

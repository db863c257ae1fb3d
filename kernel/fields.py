"""Types of the values that arrive in paths, queries and forms, bounded to what the database holds.

    async def page(conversation_id: RowId, to: Annotated[RowId, Form()], text: Annotated[FormText, Form()]): ...

A value out of range is a 422 before the route runs: never an OverflowError (SQLite: 64 bits) or a
DataError (PostgreSQL's int4 ids) turned into a 500.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le
from pydantic import AfterValidator

from bots.base import clean_text

MAX_ROW_ID = 2**31 - 1  # primary keys are INTEGER: int4 on PostgreSQL

RowId = Annotated[int, Ge(1), Le(MAX_ROW_ID)]
FormText = Annotated[str, AfterValidator(clean_text)]  # NUL removed, lone surrogates replaced

"""Tables owned by the friends context (directory database: relationships span tenants)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from db.base import DirectoryBase


class FriendshipRow(DirectoryBase):
    """One row per pair, stored with the smaller user id first so a pair cannot appear twice."""

    __tablename__ = "friendships"
    __table_args__ = (CheckConstraint("user_low_id < user_high_id", name="ordered_pair"),)

    user_low_id: Mapped[int] = mapped_column(primary_key=True)
    user_high_id: Mapped[int] = mapped_column(primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

"""Places as data·inclusion v1 records: structures (the place) and services (what it offers).

The primary key is the data·inclusion id ("<source>--<id in source>"), so importing the same
record again updates it. `origin` tells open data imports from places added by admins.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.database import Base, JSONType, UTCDateTime, utcnow

ORIGIN_OPEN_DATA = "open-data"
ORIGIN_ADMIN = "admin"
# Places an organisation added from the console (or imported from its page): shown to that
# organisation's people only. Their `source` is "organisation:<slug>" and their id
# "organisation:<slug>--<id>" (`owner_source`).
ORIGIN_ORGANISATION = "organisation"
OWNER_PREFIX = "organisation:"


def owner_source(slug: str) -> str:
    return f"{OWNER_PREFIX}{slug}"


def owner_of(origin: str | None, source: str | None) -> str | None:
    """The slug of the organisation owning a place (None: shared with everyone)."""
    if origin == ORIGIN_ORGANISATION and source and source.startswith(OWNER_PREFIX):
        return source.removeprefix(OWNER_PREFIX)
    return None


class Structure(Base):
    """A place (data·inclusion v1 Structure)."""

    __tablename__ = "directory_structures"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    nom: Mapped[str] = mapped_column(Text)
    date_maj: Mapped[date] = mapped_column(Date)
    description: Mapped[str | None] = mapped_column(Text)
    lien_source: Mapped[str | None] = mapped_column(Text)
    siret: Mapped[str | None] = mapped_column(String(14))
    adresse: Mapped[str | None] = mapped_column(Text)
    complement_adresse: Mapped[str | None] = mapped_column(Text)
    code_postal: Mapped[str | None] = mapped_column(String(5))
    code_insee: Mapped[str | None] = mapped_column(String(5))
    commune: Mapped[str | None] = mapped_column(Text)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    telephone: Mapped[str | None] = mapped_column(Text)
    courriel: Mapped[str | None] = mapped_column(Text)
    site_web: Mapped[str | None] = mapped_column(Text)
    horaires_accueil: Mapped[str | None] = mapped_column(Text)  # OSM opening_hours
    accessibilite_lieu: Mapped[str | None] = mapped_column(Text)
    reseaux_porteurs: Mapped[list] = mapped_column(JSONType, default=list)
    origin: Mapped[str] = mapped_column(String(20), default=ORIGIN_OPEN_DATA)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Service(Base):
    """What a place offers (data·inclusion v1 Service): thématiques, fees, audience, hours."""

    __tablename__ = "directory_services"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    structure_id: Mapped[str] = mapped_column(
        ForeignKey("directory_structures.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(Text)
    nom: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    date_maj: Mapped[date] = mapped_column(Date)
    lien_source: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str | None] = mapped_column(String(50))
    thematiques: Mapped[list] = mapped_column(JSONType, default=list)
    frais: Mapped[str | None] = mapped_column(String(50))
    frais_precisions: Mapped[str | None] = mapped_column(Text)
    publics: Mapped[list] = mapped_column(JSONType, default=list)
    publics_precisions: Mapped[str | None] = mapped_column(Text)
    conditions_acces: Mapped[str | None] = mapped_column(Text)
    adresse: Mapped[str | None] = mapped_column(Text)
    complement_adresse: Mapped[str | None] = mapped_column(Text)
    code_postal: Mapped[str | None] = mapped_column(String(5))
    code_insee: Mapped[str | None] = mapped_column(String(5))
    commune: Mapped[str | None] = mapped_column(Text)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    telephone: Mapped[str | None] = mapped_column(Text)
    courriel: Mapped[str | None] = mapped_column(Text)
    modes_accueil: Mapped[list] = mapped_column(JSONType, default=list)
    zone_eligibilite: Mapped[list] = mapped_column(JSONType, default=list)
    lien_mobilisation: Mapped[str | None] = mapped_column(Text)
    modes_mobilisation: Mapped[list] = mapped_column(JSONType, default=list)
    mobilisable_par: Mapped[list] = mapped_column(JSONType, default=list)
    mobilisation_precisions: Mapped[str | None] = mapped_column(Text)
    horaires_accueil: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(20), default=ORIGIN_OPEN_DATA)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DirectoryRevision(Base):
    """One row (id 1): a counter bumped by every import in the transaction that writes the places.
    Running servers poll it (directory.flow.LiveDirectory.refresh) and reload their places index
    when it changed."""

    __tablename__ = "directory_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PlaceOverride(Base):
    """What one organisation changes about a place for its own people, without touching the place:
    `hidden` (not shown to them) or `replacement_id` (shown instead: the organisation's corrected
    copy, a structure of its own). Everyone else still sees the place as it is."""

    __tablename__ = "directory_overrides"
    __table_args__ = (UniqueConstraint("organisation_id", "place_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    place_id: Mapped[str] = mapped_column(ForeignKey("directory_structures.id", ondelete="CASCADE"))
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    replacement_id: Mapped[str | None] = mapped_column(
        ForeignKey("directory_structures.id", ondelete="CASCADE"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Columns filled from a validated data·inclusion record (everything but our bookkeeping).
BOOKKEEPING = {"origin", "created_at", "updated_at"}
STRUCTURE_FIELDS = [c.name for c in Structure.__table__.columns if c.name not in BOOKKEEPING]
SERVICE_FIELDS = [c.name for c in Service.__table__.columns if c.name not in BOOKKEEPING]

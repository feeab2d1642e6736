"""Request and response bodies of organizations, members and invitations."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal
from uuid import UUID
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from slotease.kit.pagination import DEFAULT_LIMIT

OrganizationKind = Literal["hospital", "clinic", "bank", "government", "salon", "other"]
MemberRole = Literal["staff", "admin"]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


@lru_cache(maxsize=1)
def _iana_zones() -> frozenset[str]:
    # Region/City names and UTC only: legacy abbreviations (EST, CET), 'localtime' and
    # 'Factory' are in the tz database too, but they do not name a place's rules.
    return frozenset(z for z in available_timezones() if "/" in z) | {"UTC"}


def _check_timezone(value: str) -> str:
    if value not in _iana_zones():
        raise ValueError("must be an IANA time zone such as 'Europe/Paris'")
    return value


Timezone = Annotated[str, AfterValidator(_check_timezone)]


def reject_nulls(model: BaseModel, fields: tuple[str, ...]) -> None:
    """A PATCH may leave a field out; it may not set a required column to null."""
    for name in fields:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"{name} cannot be null")


class Location(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)


class OrganizationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: OrganizationKind
    timezone: Timezone
    address: Address | None = None
    location: Location | None = None


class OrganizationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    require_mfa: bool = Field(
        default=False,
        description="Staff and admins act as such here only with multi-factor sign-in on.",
    )


class OrganizationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    kind: OrganizationKind | None = None
    timezone: Timezone | None = None
    address: Address | None = None
    location: Location | None = None
    is_active: bool | None = Field(default=None, description="Super admins only.")
    settings: OrganizationSettings | None = None

    @model_validator(mode="after")
    def _required_columns(self) -> OrganizationUpdate:
        reject_nulls(self, ("name", "kind", "timezone", "is_active", "settings"))
        return self


class Organization(BaseModel):
    id: UUID
    name: str
    slug: str
    kind: OrganizationKind
    timezone: str
    address: str | None
    location: Location | None
    settings: OrganizationSettings


class OrganizationListItem(Organization):
    distance_km: float | None = Field(
        default=None, description="Great-circle distance from `near`; null without it."
    )


def _parse_near(value: str | None) -> Location | None:
    if value is None:
        return None
    lat, sep, lng = value.partition(",")
    if not sep:
        raise ValueError("must be 'LAT,LNG'")
    try:
        return Location(lat=float(lat), lng=float(lng))
    except ValueError:
        raise ValueError("must be 'LAT,LNG' with -90 <= LAT <= 90 and -180 <= LNG <= 180") from None


class OrganizationSearch(BaseModel):
    q: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = None
    kind: OrganizationKind | None = None
    near: Annotated[str | None, Field(max_length=64, examples=["48.8566,2.3522"])] = None
    radius_km: Annotated[float, Field(gt=0, le=20040)] | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = DEFAULT_LIMIT
    cursor: Annotated[str, Field(max_length=512)] | None = None

    @model_validator(mode="after")
    def _radius_needs_near(self) -> OrganizationSearch:
        _parse_near(self.near)
        if self.radius_km is not None and self.near is None:
            raise ValueError("radius_km needs near")
        return self

    @property
    def near_location(self) -> Location | None:
        return _parse_near(self.near)


class InvitationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    role: MemberRole


class MemberRoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: MemberRole


class InvitationSent(BaseModel):
    """The same answer whether or not the address has an account."""

    invitation_id: UUID
    email: str
    role: MemberRole
    status: Literal["pending"] = "pending"


class Invitation(BaseModel):
    invitation_id: UUID
    organization_id: UUID
    organization_name: str
    email: str
    role: MemberRole
    status: Literal["pending", "accepted"]
    expires_at: AwareDatetime
    created_at: AwareDatetime


class Membership(BaseModel):
    user_id: UUID
    organization_id: UUID
    role: MemberRole


class Member(Membership):
    full_name: str

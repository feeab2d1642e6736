"""Request and response bodies of organizations, members, services and closures."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise
from typing import Annotated, Any, Literal
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
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Price = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


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


def _reject_nulls(model: BaseModel, fields: tuple[str, ...]) -> None:
    """A PATCH may leave a field out; it may not set a required column to null."""
    for name in fields:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise ValueError(f"{name} cannot be null")


def _check_price_currency(price: Decimal | None, currency: str | None) -> None:
    if price is not None and currency is None:
        raise ValueError("a price needs its currency")


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
        _reject_nulls(self, ("name", "kind", "timezone", "is_active", "settings"))
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


class WorkingHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weekday: int = Field(ge=0, le=6, description="0 is Monday.")
    start: ClockTime = Field(description="HH:MM, wall-clock in the organization's timezone.")
    end: ClockTime

    @model_validator(mode="after")
    def _start_before_end(self) -> WorkingHours:
        # Zero-padded HH:MM strings order like the times they name.
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self


def _check_week(hours: list[WorkingHours]) -> list[WorkingHours]:
    ordered = sorted(hours, key=lambda h: (h.weekday, h.start))
    for previous, current in pairwise(ordered):
        if previous.weekday == current.weekday and current.start < previous.end:
            raise ValueError(
                f"intervals overlap on weekday {current.weekday}:"
                f" {previous.start}-{previous.end} and {current.start}-{current.end}"
            )
    return hours


Week = Annotated[list[WorkingHours], Field(max_length=168), AfterValidator(_check_week)]
Minutes = Annotated[int, Field(ge=5, le=1440)]
Capacity = Annotated[int, Field(ge=1, le=10000)]
BufferMinutes = Annotated[int, Field(ge=0, le=1440)]
NoticeMinutes = Annotated[int, Field(ge=0, le=525600)]
AdvanceDays = Annotated[int, Field(ge=1, le=730)]


class ServiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    duration_minutes: Minutes
    capacity: Capacity = 1
    buffer_minutes: BufferMinutes = 0
    min_notice_minutes: NoticeMinutes = 0
    max_advance_days: AdvanceDays = 60
    slot_interval_minutes: Minutes | None = Field(
        default=None, description="Defaults to duration_minutes."
    )
    working_hours: Week = Field(default_factory=list)
    price: Price | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ServiceCreate:
        _check_price_currency(self.price, self.currency)
        if self.slot_interval_minutes is None:
            self.slot_interval_minutes = self.duration_minutes
        return self

    def columns(self) -> dict[str, Any]:
        return self.model_dump(exclude={"working_hours"})


class ServiceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    duration_minutes: Minutes | None = None
    capacity: Capacity | None = None
    buffer_minutes: BufferMinutes | None = None
    min_notice_minutes: NoticeMinutes | None = None
    max_advance_days: AdvanceDays | None = None
    slot_interval_minutes: Minutes | None = None
    working_hours: Week | None = Field(default=None, description="Replaces the whole week.")
    price: Price | None = None
    currency: Currency | None = None
    is_active: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ServiceUpdate:
        _reject_nulls(
            self,
            (
                "name",
                "duration_minutes",
                "capacity",
                "buffer_minutes",
                "min_notice_minutes",
                "max_advance_days",
                "slot_interval_minutes",
                "working_hours",
                "is_active",
            ),
        )
        # Price and currency are sent together, so a stored price never loses its currency.
        if "price" in self.model_fields_set:
            _check_price_currency(self.price, self.currency)
        elif "currency" in self.model_fields_set and self.currency is None:
            raise ValueError("clear the price together with its currency")
        return self

    def columns(self) -> dict[str, Any]:
        return self.model_dump(include=self.model_fields_set - {"working_hours"})


class Service(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    duration_minutes: int
    capacity: int
    buffer_minutes: int
    min_notice_minutes: int
    max_advance_days: int
    slot_interval_minutes: int
    working_hours: list[WorkingHours]
    price: Decimal | None = Field(description='A decimal string, e.g. "25.00".')
    currency: str | None
    is_active: bool


class ClosureCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None

    @model_validator(mode="after")
    def _starts_before_ends(self) -> ClosureCreate:
        if self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self


class Closure(BaseModel):
    id: UUID
    service_id: UUID
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: str | None


class ClosureRange(BaseModel):
    """Dates are days in the organization's timezone; both ends are included."""

    from_: date | None = Field(default=None, alias="from")
    to: date | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = DEFAULT_LIMIT
    cursor: Annotated[str, Field(max_length=512)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ClosureRange:
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValueError("from must not be after to")
        return self

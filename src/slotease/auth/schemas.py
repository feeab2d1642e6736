"""Request and response bodies of sign-up, tokens, the current user and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

# The upper bound keeps a hostile body from costing seconds of argon2 work.
Password = Annotated[str, Field(min_length=8, max_length=256)]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# The same rule as the user_profiles check constraint, so a bad phone is a 422, not a 500.
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()-]{5,32}$")]
OpaqueToken = Annotated[str, Field(min_length=1, max_length=512)]
# A six-digit TOTP code or a recovery code, spaces and dashes allowed.
MfaCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=6, max_length=32)]
ApiKeyRole = Literal["staff", "admin"]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignupRequest(_Input):
    email: EmailStr
    password: Password
    full_name: FullName
    phone: Phone | None = None


class PasswordGrant(_Input):
    grant_type: Literal["password"]
    # Not validated as an address: a malformed one simply matches nobody and gets the same 401.
    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class RefreshGrant(_Input):
    grant_type: Literal["refresh_token"]
    refresh_token: OpaqueToken


class MfaGrant(_Input):
    grant_type: Literal["mfa"]
    mfa_token: OpaqueToken
    code: MfaCode


TokenRequest = Annotated[PasswordGrant | RefreshGrant | MfaGrant, Field(discriminator="grant_type")]


class LogoutRequest(_Input):
    refresh_token: OpaqueToken


class AccessToken(BaseModel):
    access_token: str
    expires_in: int


class SessionUser(BaseModel):
    id: UUID
    email: str
    full_name: str


class SessionOut(BaseModel):
    user: SessionUser
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class SignupPending(BaseModel):
    """Sign-up in Supabase mode when the project confirms addresses first: the account
    exists, and its session starts once the link Supabase Auth sent is opened."""

    user: SessionUser
    confirmation_sent: Literal[True] = True


class Membership(BaseModel):
    organization_id: UUID
    role: str


class MeOut(BaseModel):
    id: UUID
    email: str | None
    full_name: str
    phone: str | None
    is_super_admin: bool
    email_verified: bool = Field(description="Email notifications go only to verified addresses.")
    mfa_enabled: bool
    memberships: list[Membership]


class MeUpdate(_Input):
    full_name: FullName | None = None
    # An explicit null clears the phone number.
    phone: Phone | None = None


class PasswordChange(_Input):
    current_password: Annotated[str, Field(min_length=1, max_length=256)]
    new_password: Password


class RecoveryRequest(_Input):
    # Not validated as an address: a malformed one matches nobody and gets the same 202.
    email: Annotated[str, Field(min_length=1, max_length=320)]


class PasswordReset(_Input):
    token: OpaqueToken
    new_password: Password


class VerificationRequest(_Input):
    token: OpaqueToken


class MfaCodeBody(_Input):
    code: MfaCode


class MfaEnrollment(BaseModel):
    secret: str = Field(description="Base32 TOTP secret, shown only in this answer.")
    otpauth_uri: str
    recovery_codes: list[str] = Field(description="Single-use codes, shown only here.")


class ApiKeyCreate(_Input):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    role: ApiKeyRole


class ApiKeyOut(BaseModel):
    id: UUID
    organization_id: UUID
    name: str
    role: ApiKeyRole
    prefix: str
    created_by: UUID | None
    created_at: datetime
    last_used_at: datetime | None
    # Set when the key was rotated: it keeps working until then.
    expires_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret, shown only in this answer.")

"""HTTP routes of organizations, their members and invitations."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from slotease.auth.deps import CurrentUser, DbDep, ReadDbDep, SignedIn
from slotease.kit.openapi import ADMIN_ONLY, NOT_FOUND, SIGNED_IN
from slotease.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page
from slotease.organizations import service
from slotease.organizations.schemas import (
    Invitation,
    InvitationCreate,
    InvitationSent,
    Member,
    MemberRoleChange,
    Membership,
    Organization,
    OrganizationCreate,
    OrganizationListItem,
    OrganizationSearch,
    OrganizationUpdate,
)

router = APIRouter(tags=["organizations"])


@router.post(
    "/organizations",
    status_code=status.HTTP_201_CREATED,
    responses=SIGNED_IN,
)
async def create_organization(
    body: OrganizationCreate, _: CurrentUser, conn: DbDep
) -> Organization:
    """Create an organization; the caller becomes its admin."""
    return await service.create_organization(conn, body)


@router.get("/organizations")
async def list_organizations(
    search: Annotated[OrganizationSearch, Query()], conn: ReadDbDep
) -> Page[OrganizationListItem]:
    """The directory: full-text `q` (the last word also matches as a prefix), `kind`, and with
    `near=LAT,LNG` the nearest first with `distance_km`, optionally within `radius_km`.
    Organizations without a location are left out of `near` searches."""
    return await service.search_organizations(conn, search)


@router.get("/organizations/{org_id}", responses=NOT_FOUND)
async def get_organization(org_id: UUID, conn: ReadDbDep) -> Organization:
    return await service.get_organization(conn, org_id)


@router.patch("/organizations/{org_id}", responses=ADMIN_ONLY)
async def update_organization(
    org_id: UUID, body: OrganizationUpdate, _: SignedIn, conn: DbDep
) -> Organization:
    """Change any field; `is_active` is for platform admins only."""
    return await service.update_organization(conn, org_id, body)


@router.get(
    "/organizations/{org_id}/members",
    responses={403: {"description": "Not a member of the organization"}, **NOT_FOUND},
)
async def list_members(
    org_id: UUID,
    _: SignedIn,
    conn: DbDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[Member]:
    return await service.list_members(conn, org_id, limit=limit, cursor=cursor)


@router.post(
    "/organizations/{org_id}/members",
    status_code=status.HTTP_202_ACCEPTED,
    responses=ADMIN_ONLY,
)
async def invite_member(
    org_id: UUID, body: InvitationCreate, _: SignedIn, conn: DbDep
) -> InvitationSent:
    """Invite an address to a role: the same answer whether or not it has an account. The
    address receives a link; the invitation holds for 7 days, and inviting the address again
    replaces it. Accepting (`POST /v1/invitations/{id}/accept`) makes the membership."""
    return await service.invite(conn, org_id, body)


@router.patch(
    "/organizations/{org_id}/members/{user_id}",
    responses={**ADMIN_ONLY, 409: {"description": "Demoting the last admin"}},
)
async def change_member_role(
    org_id: UUID, user_id: UUID, body: MemberRoleChange, _: SignedIn, conn: DbDep
) -> Membership:
    """Change the role of an existing member."""
    return await service.change_member_role(conn, org_id, user_id, body)


@router.get("/organizations/{org_id}/invitations", responses=ADMIN_ONLY)
async def list_invitations(
    org_id: UUID,
    _: SignedIn,
    conn: DbDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> Page[Invitation]:
    """The organization's pending invitations, oldest first."""
    return await service.list_invitations(conn, org_id, limit=limit, cursor=cursor)


@router.get("/me/invitations", responses=SIGNED_IN)
async def my_invitations(
    _: CurrentUser, conn: DbDep, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[Invitation]:
    """Pending invitations addressed to the caller's email, oldest first."""
    return await service.my_invitations(conn, limit=limit, cursor=cursor)


@router.post(
    "/invitations/{invitation_id}/accept",
    status_code=status.HTTP_201_CREATED,
    responses={
        **SIGNED_IN,
        404: {"description": "No pending invitation to the caller's address with this id"},
        409: {"description": "Accepting would demote the organization's last admin"},
    },
)
async def accept_invitation(invitation_id: UUID, _: CurrentUser, conn: DbDep) -> Membership:
    """Join the organization with the invited role. The caller's account email must be the
    invited address (compared, not yet verified)."""
    return await service.accept_invitation(conn, invitation_id)


@router.delete(
    "/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**SIGNED_IN, **NOT_FOUND},
)
async def delete_invitation(invitation_id: UUID, _: SignedIn, conn: DbDep) -> Response:
    """An admin of the organization revokes it; the invitee declines it."""
    await service.delete_invitation(conn, invitation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/organizations/{org_id}/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**ADMIN_ONLY, 409: {"description": "Removing the last admin"}},
)
async def remove_member(org_id: UUID, user_id: UUID, _: SignedIn, conn: DbDep) -> Response:
    await service.remove_member(conn, org_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

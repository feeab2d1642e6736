"""Data shared by the tenant-isolation tests: two organizations and their people."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tests.factories import Owner, User, add_member, make_organization, make_user


@dataclass(frozen=True)
class TwoTenants:
    admin_a: User
    org_a: uuid.UUID
    admin_b: User
    staff_b: User
    org_b: uuid.UUID


def two_tenants(owner: Owner) -> TwoTenants:
    admin_a, admin_b, staff_b = make_user(owner), make_user(owner), make_user(owner)
    org_a = make_organization(owner, admin_a, name="Org A")
    org_b = make_organization(owner, admin_b, name="Org B")
    add_member(owner, org_b, staff_b, "staff")
    return TwoTenants(admin_a=admin_a, org_a=org_a, admin_b=admin_b, staff_b=staff_b, org_b=org_b)

"""Readiness for distributing the tenant tables by `organization_id` (Citus): every primary
key, unique key and foreign key of a tenant table includes the column, so that each holds
within one shard. The global tables, and the tenant tables not yet fit for it, are listed with
the reason; the tests fail on any table that is neither fit nor listed, and on a listed one
that became fit (take it off the list)."""

from __future__ import annotations

from tests.factories import Owner

SCHEMAS = ["public", "app", "auth"]

# Tables without `organization_id`: reference or local tables under Citus, never sharded.
GLOBAL = {
    "auth.users": "accounts are global: a person is a customer of many organizations",
    "public.user_profiles": "one per account, beside auth.users",
    "public.notification_preferences": "one per account, whatever the organization",
    "public.calendar_feed_tokens": "one per account: the feed spans every organization",
    "app.platform_admins": "platform operators, above the organizations",
    "app.refresh_tokens": "sessions belong to an account, not to an organization",
    "app.account_tokens": "recovery and verification links belong to an account",
    "app.mfa_factors": "an account's second factor, whatever the organization",
    "app.mfa_recovery_codes": "an account's recovery codes, beside its factor",
    "public.consent_events": "a person's consents hold for every organization",
    "app.encryption_keys": "the keys' check values, one set per database",
    "public.organizations": "the distribution anchor itself (its key is organization_id)",
    "public.alembic_version": "the schema revision",
    "public.procrastinate_jobs": "the job queue, claimed by workers of every organization",
    "public.procrastinate_events": "the job queue's history",
    "public.procrastinate_periodic_defers": "the job queue's periodic schedule",
    "public.procrastinate_workers": "the job queue's workers",
}

# Tenant tables whose keys do not yet include organization_id. Each holds rows that belong
# to no organization (the column is nullable), so distributing them needs a decision first:
# split the platform's rows off, or distribute by the owning account instead.
NOT_YET = {
    "public.audit_log": "primary key (id, at); platform actions have no organization",
    "public.analytics_events": "primary key (id, occurred_at); sign-ups have no organization",
    "public.notifications": "primary key (id, created_at); account messages have none",
    "public.idempotency_keys": "primary key (principal, idempotency_key): scoped to a sender",
}

_TABLES_SQL = """
select format('%%I.%%I', n.nspname, c.relname),
       exists (select 1 from pg_attribute a
               where a.attrelid = c.oid and a.attname = 'organization_id' and not a.attisdropped)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%s) and c.relkind in ('r', 'p') and not c.relispartition
"""

# Keys of the tenant tables that leave organization_id out; a foreign key to a global table
# (auth.users) is fine: under Citus that table is a reference table, present on every node.
_KEYS_WITHOUT_ORG_SQL = """
with keys as (
  select format('%%I.%%I', n.nspname, c.relname) as tab, con.conname, con.contype,
         con.confrelid,
         array(select a.attname::text from unnest(con.conkey) k
               join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k) as cols,
         array(select a.attname::text from unnest(con.confkey) k
               join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k) as refcols
  from pg_constraint con join pg_class c on c.oid = con.conrelid
  join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = any(%s) and con.contype in ('p', 'u', 'f') and not c.relispartition
    and exists (select 1 from pg_attribute a
                where a.attrelid = c.oid and a.attname = 'organization_id')
)
select tab, conname from keys
where not ('organization_id' = any(cols))
  and (contype <> 'f' or exists (select 1 from pg_attribute a
                                 where a.attrelid = keys.confrelid
                                   and a.attname = 'organization_id'))
union all
select tab, conname from keys
where contype = 'f' and confrelid <> 'public.organizations'::regclass
  and 'organization_id' = any(cols) and not ('organization_id' = any(refcols))
union all
select format('%%I.%%I', n.nspname, c.relname), i.relname
from pg_index x join pg_class i on i.oid = x.indexrelid
join pg_class c on c.oid = x.indrelid join pg_namespace n on n.oid = c.relnamespace
where x.indisunique and n.nspname = any(%s) and not c.relispartition
  and not exists (select 1 from pg_constraint con where con.conindid = x.indexrelid)
  and exists (select 1 from pg_attribute a
              where a.attrelid = c.oid and a.attname = 'organization_id')
  and not exists (select 1 from pg_attribute a
                  where a.attrelid = c.oid and a.attname = 'organization_id'
                    and a.attnum = any(x.indkey))
"""


def test_every_table_is_a_tenant_table_or_listed_as_global(owner: Owner) -> None:
    rows = owner.execute(_TABLES_SQL, (SCHEMAS,)).fetchall()
    without_org = {name for name, has_org in rows if not has_org}
    assert without_org == set(GLOBAL)
    assert len(rows) - len(without_org) >= 20


def test_every_key_of_a_tenant_table_includes_the_organization(owner: Owner) -> None:
    rows = owner.execute(_KEYS_WITHOUT_ORG_SQL, (SCHEMAS, SCHEMAS)).fetchall()
    offenders: dict[str, list[str]] = {}
    for table, key in rows:
        offenders.setdefault(table, []).append(key)
    assert sorted(offenders) == sorted(NOT_YET), offenders

-- Freshness: a database-maintained availability version bumped by every change that alters slots.

-- ---------------------------------------------------------------------------------------
-- Availability versions. Cached availability answers are keyed by their service's version;
-- every statement that can change what a service offers bumps it in the writer's own
-- transaction, whoever the writer is (the API, a job, psql), so a committed change is never
-- hidden behind a cached answer. Versions come from one sequence: a service that is deleted
-- and whose id comes back never meets an older entry.
-- ---------------------------------------------------------------------------------------
create sequence app.availability_version_seq;

create table public.availability_versions (
  organization_id uuid not null,
  service_id uuid not null,
  version bigint not null,
  primary key (service_id, organization_id)
);
create index availability_versions_org_idx on public.availability_versions (organization_id);
alter table public.availability_versions enable row level security;
alter table public.availability_versions force row level security;
-- No policy: read only through app.availability_version(), written only by the triggers below.
grant all on public.availability_versions to service_role;

-- Bump the services given as aligned arrays, in service order so that concurrent bumps of
-- the same services cannot deadlock.
create function app.bump_availability_versions(service_ids uuid[], organization_ids uuid[])
  returns void
  language sql security definer
  set search_path = ''
  as $$
    insert into public.availability_versions as v (service_id, organization_id, version)
    select c.service_id, c.organization_id, nextval('app.availability_version_seq')
    from (
      select distinct u.service_id, u.organization_id
      from unnest(service_ids, organization_ids) as u (service_id, organization_id)
      where u.service_id is not null
      order by u.service_id, u.organization_id
    ) c
    on conflict (service_id, organization_id) do update set version = excluded.version
  $$;
revoke execute on function app.bump_availability_versions(uuid[], uuid[]) from public;

-- A statement-level trigger for any table whose rows name a service and its organization and
-- shape what it offers: appointments, working hours, closures (`service_id`, the default) and
-- services themselves (`id`, given as the trigger's argument: every field of a service shapes
-- its slots). A bulk change bumps each service it touched once. Attach it as three triggers
-- (one per event: transition tables allow one event per trigger), naming the transition
-- tables old_rows and new_rows.
create function app.bump_availability_of_rows() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  service_column text := coalesce(tg_argv[0], 'service_id');
  changed text := case tg_op
    when 'INSERT' then 'select %1$I as service_id, organization_id from new_rows'
    when 'DELETE' then 'select %1$I as service_id, organization_id from old_rows'
    when 'UPDATE' then 'select %1$I as service_id, organization_id from old_rows'
         ' union select %1$I, organization_id from new_rows'
    -- A truncate leaves no rows to name: every service moves on.
    else 'select id as service_id, organization_id from public.services'
  end;
begin
  execute format(
    'select app.bump_availability_versions(array_agg(c.service_id), array_agg(c.organization_id))'
    ' from (' || changed || ') c',
    service_column
  );
  return null;
end
$$;
revoke execute on function app.bump_availability_of_rows() from public;

-- Organizations: the timezone places working hours on the clock, and an inactive
-- organization offers nothing. Other fields leave slots alone.
create function app.bump_availability_of_organizations() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  perform app.bump_availability_versions(array_agg(s.id), array_agg(s.organization_id))
  from public.services s
  where s.organization_id in (
    select n.id from new_rows n join old_rows o on o.id = n.id
    where (n.timezone, n.is_active) is distinct from (o.timezone, o.is_active)
  );
  return null;
end
$$;
revoke execute on function app.bump_availability_of_organizations() from public;

do $$
declare
  shaping text;
begin
  foreach shaping in array array['appointments', 'service_working_hours', 'service_closures'] loop
    execute format(
      'create trigger %1$s_availability_insert after insert on public.%1$I'
      ' referencing new table as new_rows'
      ' for each statement execute function app.bump_availability_of_rows()', shaping);
    execute format(
      'create trigger %1$s_availability_update after update on public.%1$I'
      ' referencing old table as old_rows new table as new_rows'
      ' for each statement execute function app.bump_availability_of_rows()', shaping);
    execute format(
      'create trigger %1$s_availability_delete after delete on public.%1$I'
      ' referencing old table as old_rows'
      ' for each statement execute function app.bump_availability_of_rows()', shaping);
    execute format(
      'create trigger %1$s_availability_truncate after truncate on public.%1$I'
      ' for each statement execute function app.bump_availability_of_rows()', shaping);
  end loop;
end
$$;

create trigger services_availability_insert after insert on public.services
  referencing new table as new_rows
  for each statement execute function app.bump_availability_of_rows('id');
create trigger services_availability_update after update on public.services
  referencing old table as old_rows new table as new_rows
  for each statement execute function app.bump_availability_of_rows('id');
create trigger services_availability_delete after delete on public.services
  referencing old table as old_rows
  for each statement execute function app.bump_availability_of_rows('id');
create trigger organizations_availability_update after update on public.organizations
  referencing old table as old_rows new table as new_rows
  for each statement execute function app.bump_availability_of_organizations();

-- The version a cached answer is keyed by: a number, nothing about the service, so anyone
-- may read it (0 for a service never changed since this revision).
create function app.availability_version(service uuid) returns bigint
  language sql stable security definer
  set search_path = ''
  as $$
    select coalesce(max(v.version), 0) from public.availability_versions v
    where v.service_id = service
  $$;
revoke execute on function app.availability_version(uuid) from public;
grant execute on function app.availability_version(uuid) to anon, authenticated, service_role;

-- Reading a queue no longer applies the grace period (the periodic job does, as service_role,
-- and staff before calling the next ticket): anonymous callers have no reason to run it.
revoke execute on function app.expire_called_tickets(uuid) from anon;

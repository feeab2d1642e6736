set local lock_timeout = '5s';
-- Availability by day: an appointment change moves on the versions of the local days whose
-- slots it can touch, not its service's version, so a booking invalidates the cached
-- answers of one day (two when its place, buffer included, crosses midnight). Every other
-- change that shapes the slots (hours, closures, the service, the organization's zone or
-- activity, a truncate of appointments) still moves the service's version on, and a cached
-- day is keyed by both.

create table public.availability_days (
  organization_id uuid not null,
  service_id uuid not null,
  day date not null,
  version bigint not null,
  primary key (service_id, day, organization_id)
);
create index availability_days_org_idx on public.availability_days (organization_id);
alter table public.availability_days enable row level security;
alter table public.availability_days force row level security;
-- No policy: read only through app.availability_days(), written only by the triggers below.
grant all on public.availability_days to service_role;

-- A slot of local day D meets a place [starts_at, ends_at + buffer) only if D lies between
-- the local dates of starts_at - buffer and ends_at + buffer: the slot ends within D and its
-- own place runs a buffer past its end. Days are numbered from the one sequence of service
-- versions, so a day never meets an entry keyed by an older number.
create function app.bump_availability_days() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  changed text := case tg_op
    when 'INSERT' then 'select service_id, starts_at, ends_at from new_rows'
    when 'DELETE' then 'select service_id, starts_at, ends_at from old_rows'
    else 'select service_id, starts_at, ends_at from old_rows'
         ' union select service_id, starts_at, ends_at from new_rows'
  end;
begin
  execute
    'insert into public.availability_days as v (service_id, day, organization_id, version)'
    ' select c.service_id, c.day, c.organization_id, nextval(''app.availability_version_seq'')'
    ' from ('
    '   select distinct a.service_id, d.day::date as day, s.organization_id'
    '   from (' || changed || ') a'
    '   join public.services s on s.id = a.service_id'
    '   join public.organizations o on o.id = s.organization_id'
    '   cross join lateral generate_series('
    '     ((a.starts_at - make_interval(mins => s.buffer_minutes)) at time zone o.timezone)::date,'
    '     ((a.ends_at + make_interval(mins => s.buffer_minutes)) at time zone o.timezone)::date,'
    '     interval ''1 day'') as d (day)'
    '   order by 1, 2, 3'
    ' ) c'
    ' on conflict (service_id, day, organization_id) do update set version = excluded.version';
  return null;
end
$$;
revoke execute on function app.bump_availability_days() from public;

drop trigger appointments_availability_insert on public.appointments;
drop trigger appointments_availability_update on public.appointments;
drop trigger appointments_availability_delete on public.appointments;
create trigger appointments_availability_days_insert after insert on public.appointments
  referencing new table as new_rows
  for each statement execute function app.bump_availability_days();
create trigger appointments_availability_days_update after update on public.appointments
  referencing old table as old_rows new table as new_rows
  for each statement execute function app.bump_availability_days();
create trigger appointments_availability_days_delete after delete on public.appointments
  referencing old table as old_rows
  for each statement execute function app.bump_availability_days();

-- The versions of a run of local days, in order (0 for a day never changed), and a number
-- each, so anyone may read them. At most a year: the API asks for 62 days at the most.
create function app.availability_days(service uuid, first_day date, last_day date)
  returns bigint[]
  language sql stable security definer
  set search_path = ''
  as $$
    select coalesce(array_agg(coalesce(v.version, 0) order by d.day), '{}')
    from generate_series(first_day, least(last_day, first_day + 366), interval '1 day') as d (day)
    left join public.availability_days v on v.service_id = service and v.day = d.day::date
  $$;
revoke execute on function app.availability_days(uuid, date, date) from public;
grant execute on function app.availability_days(uuid, date, date)
  to anon, authenticated, service_role;

-- Appointments: capacity and the status rules enforced inside PostgreSQL for every writer (the
-- API, psql, a job), and the personal-data-free read path of the slot engine.

-- An appointment lasts at most a day (services last at most 1440 minutes). The bound lets the
-- capacity check scan a short index range instead of a service's whole history.
alter table public.appointments
  add constraint appointments_length_check check (ends_at <= starts_at + interval '24 hours');

-- ---------------------------------------------------------------------------------------
-- Capacity. A place is occupied over [starts_at, ends_at + buffer) while the appointment is
-- booked, checked in or in service. Writers of one service queue on a transaction-scoped
-- advisory lock, so each check sees every place committed before it.
-- ---------------------------------------------------------------------------------------
create function app.enforce_capacity() returns trigger
  -- Security definer: a customer sees only their own rows, but the count needs everyone's.
  language plpgsql security definer
  set search_path = ''
  -- A custom plan would be made on every call, planning over every monthly partition; the
  -- generic plan prunes partitions at run time and is planned once per connection.
  set plan_cache_mode = force_generic_plan
  as $$
declare
  service_capacity integer;
  buffer interval;
  peak integer;
begin
  if new.status not in ('booked', 'checked_in', 'in_service') then
    return new;
  end if;
  -- Under REPEATABLE READ the snapshot predates the lock, so a place committed by the previous
  -- holder would stay invisible and the check would pass wrongly. SERIALIZABLE is safe: SSI
  -- reports the read-write conflict.
  if current_setting('transaction_isolation') = 'repeatable read' then
    raise exception 'appointments cannot be written in a REPEATABLE READ transaction'
      using errcode = 'SEISO', hint = 'use READ COMMITTED or SERIALIZABLE';
  end if;

  perform pg_advisory_xact_lock(hashtextextended(new.service_id::text, 0));

  select s.capacity, make_interval(mins => s.buffer_minutes) into service_capacity, buffer
  from public.services s
  where s.id = new.service_id and s.organization_id = new.organization_id;

  -- Concurrency only rises at a start, so its peak over the new place is reached at the new
  -- start or at the start of an overlapping place: checking those instants is exact.
  select coalesce(max(occupied.n), 0) into peak
  from (
    select new.starts_at as at
    union
    select a.starts_at
    from public.appointments a
    where a.service_id = new.service_id
      and a.status in ('booked', 'checked_in', 'in_service')
      and a.id <> new.id
      and a.starts_at > new.starts_at
      and a.starts_at < new.ends_at + buffer
  ) instants
  cross join lateral (
    select count(*)::integer as n
    from public.appointments b
    where b.service_id = new.service_id
      and b.status in ('booked', 'checked_in', 'in_service')
      and b.id <> new.id
      and b.starts_at > instants.at - interval '24 hours' - buffer
      and b.starts_at <= instants.at
      and b.ends_at + buffer > instants.at
  ) occupied;

  if peak + 1 > service_capacity then
    raise exception 'the slot is full'
      using errcode = 'SECAP', hint = 'slot_full',
            detail = format('service %s has capacity %s', new.service_id, service_capacity);
  end if;
  return new;
end
$$;

create trigger appointments_capacity
  before insert or update of starts_at, ends_at, status, service_id on public.appointments
  for each row execute function app.enforce_capacity();

-- ---------------------------------------------------------------------------------------
-- Status rules: booked -> checked_in -> in_service -> completed; booked -> cancelled;
-- booked | checked_in -> no_show. A customer (not a member of the organization) may only
-- move their appointment, edit its notes and cancel it. Requests through the API carry the
-- `authenticated` role in their claims; the owner and service_role act without those limits
-- on who, but never against the transition rules.
-- ---------------------------------------------------------------------------------------
create function app.check_appointment_change() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  if new.status is distinct from old.status then
    if not (
      (old.status = 'booked' and new.status in ('checked_in', 'cancelled', 'no_show'))
      or (old.status = 'checked_in' and new.status in ('in_service', 'no_show'))
      or (old.status = 'in_service' and new.status = 'completed')
    ) then
      raise exception 'an appointment cannot go from % to %', old.status, new.status
        using errcode = 'SESTA', hint = 'invalid_transition';
    end if;
    if new.status = 'cancelled' then
      new.cancelled_at := now();
    end if;
  end if;

  if auth.role() = 'authenticated' and not app.is_org_member(old.organization_id) then
    if new.status is distinct from old.status and new.status <> 'cancelled' then
      raise exception 'only the organization may change this status'
        using errcode = '42501', hint = 'customer_status';
    end if;
    if old.status <> 'booked' and (new.starts_at, new.ends_at) is distinct from (old.starts_at, old.ends_at) then
      raise exception 'only a booked appointment can be moved'
        using errcode = 'SESTA', hint = 'not_booked';
    end if;
    if (new.id, new.organization_id, new.service_id, new.customer_id, new.booked_by, new.created_at)
       is distinct from
       (old.id, old.organization_id, old.service_id, old.customer_id, old.booked_by, old.created_at) then
      raise exception 'a customer may only change the time, the notes or cancel'
        using errcode = '42501', hint = 'customer_fields';
    end if;
  end if;
  return new;
end
$$;

create trigger appointments_change_rules before update on public.appointments
  for each row execute function app.check_appointment_change();

-- ---------------------------------------------------------------------------------------
-- The slot engine's read path: occupied places of a service in a window, without anything
-- personal, so that anyone may compute availability.
-- ---------------------------------------------------------------------------------------
-- ---------------------------------------------------------------------------------------
-- Slot usage: how many active places each (service, start, end) holds, kept by a trigger in
-- the same transaction as every appointment change. The availability read then costs one row
-- per slot instead of one per appointment (a busy month is tens of thousands).
-- ---------------------------------------------------------------------------------------
create table public.appointment_slot_usage (
  organization_id uuid not null,
  service_id uuid not null,
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  places integer not null check (places > 0),
  primary key (service_id, starts_at, ends_at, organization_id)
);
create index appointment_slot_usage_org_idx on public.appointment_slot_usage (organization_id);
alter table public.appointment_slot_usage enable row level security;
alter table public.appointment_slot_usage force row level security;
-- No policy: read only through app.busy_intervals(), written only by the trigger below.
grant all on public.appointment_slot_usage to service_role;

create function app.track_slot_usage() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  -- A move to another monthly partition arrives as a DELETE then an INSERT: both are handled.
  if tg_op in ('UPDATE', 'DELETE') and old.status in ('booked', 'checked_in', 'in_service') then
    update public.appointment_slot_usage u set places = u.places - 1
    where u.service_id = old.service_id and u.starts_at = old.starts_at
      and u.ends_at = old.ends_at and u.organization_id = old.organization_id
      and u.places > 1;
    if not found then
      delete from public.appointment_slot_usage u
      where u.service_id = old.service_id and u.starts_at = old.starts_at
        and u.ends_at = old.ends_at and u.organization_id = old.organization_id;
    end if;
  end if;
  if tg_op in ('INSERT', 'UPDATE') and new.status in ('booked', 'checked_in', 'in_service') then
    insert into public.appointment_slot_usage as u
      (organization_id, service_id, starts_at, ends_at, places)
    values (new.organization_id, new.service_id, new.starts_at, new.ends_at, 1)
    on conflict (service_id, starts_at, ends_at, organization_id)
      do update set places = u.places + 1;
  end if;
  return null;
end
$$;
revoke execute on function app.track_slot_usage() from public;

create trigger appointments_slot_usage
  after insert or update of starts_at, ends_at, status, service_id or delete
  on public.appointments
  for each row execute function app.track_slot_usage();

-- After a bulk load with triggers off (session_replication_role = replica), recount.
create function app.rebuild_slot_usage() returns integer
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  counted integer;
begin
  lock table public.appointment_slot_usage in exclusive mode;
  delete from public.appointment_slot_usage;
  insert into public.appointment_slot_usage (organization_id, service_id, starts_at, ends_at, places)
  select a.organization_id, a.service_id, a.starts_at, a.ends_at, count(*)
  from public.appointments a
  where a.status in ('booked', 'checked_in', 'in_service')
  group by a.organization_id, a.service_id, a.starts_at, a.ends_at;
  get diagnostics counted = row_count;
  return counted;
end
$$;
revoke execute on function app.rebuild_slot_usage() from public;
grant execute on function app.rebuild_slot_usage() to service_role;

-- Places in use over a window, grouped by identical interval, with nothing personal.
create function app.busy_intervals(service uuid, window_start timestamptz, window_end timestamptz)
  returns table (starts_at timestamptz, ends_at timestamptz, places integer)
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return query
    select u.starts_at, u.ends_at, u.places
    from public.appointment_slot_usage u
    where u.service_id = service
      -- A place lasts at most 24 hours and its buffer at most 24 more.
      and u.starts_at > window_start - interval '48 hours'
      and u.starts_at < window_end
    order by u.starts_at;
end
$$;
revoke execute on function app.busy_intervals(uuid, timestamptz, timestamptz) from public;
grant execute on function app.busy_intervals(uuid, timestamptz, timestamptz)
  to anon, authenticated, service_role;

-- Ratings are public aggregates: how many, the mean, and how many of each star.
create function app.service_rating_stats(service uuid,
                                         out count integer, out average numeric,
                                         out distribution integer[])
  language sql stable security definer
  set search_path = ''
  as $$
    select count(*)::integer,
           round(avg(f.rating), 2),
           array[
             count(*) filter (where f.rating = 1), count(*) filter (where f.rating = 2),
             count(*) filter (where f.rating = 3), count(*) filter (where f.rating = 4),
             count(*) filter (where f.rating = 5)
           ]::integer[]
    from public.feedback f
    where f.service_id = service
  $$;
revoke execute on function app.service_rating_stats(uuid) from public;
grant execute on function app.service_rating_stats(uuid) to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Feedback: only the appointment's own customer, once it is completed, whoever writes the row
-- (the insert policy alone would let a customer rate someone else's appointment).
-- ---------------------------------------------------------------------------------------
create function app.check_feedback() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  appointment record;
begin
  select a.customer_id, a.status, a.service_id into appointment
  from public.appointments a
  where a.id = new.appointment_id
    and a.starts_at = new.appointment_starts_at
    and a.organization_id = new.organization_id;
  if not found or appointment.customer_id is distinct from new.customer_id then
    raise exception 'only the customer of the appointment may rate it'
      using errcode = '42501', hint = 'feedback_owner';
  end if;
  if appointment.status <> 'completed' then
    raise exception 'feedback can be given once the appointment is completed'
      using errcode = 'SESTA', hint = 'not_completed';
  end if;
  -- Ratings are aggregated per service: never trust the writer's copy of it.
  new.service_id := appointment.service_id;
  return new;
end
$$;
revoke execute on function app.check_feedback() from public;

create trigger feedback_rules before insert on public.feedback
  for each row execute function app.check_feedback();

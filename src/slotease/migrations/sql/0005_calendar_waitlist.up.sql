-- Calendars and the waitlist: the revision counter behind an event's SEQUENCE, revocable
-- calendar feed tokens, and waitlist entries whose offers are made by the database in the
-- same transaction as whatever frees a place, whoever writes.

-- ---------------------------------------------------------------------------------------
-- Appointment revisions. Calendar clients replace an event only when its SEQUENCE rises, so
-- every move or status change counts one more revision, whoever writes.
-- ---------------------------------------------------------------------------------------
alter table public.appointments add column revision integer not null default 0;

create function app.count_appointment_revision() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  new.revision := old.revision
    + case when (new.starts_at, new.ends_at, new.status) is distinct from
                (old.starts_at, old.ends_at, old.status) then 1 else 0 end;
  return new;
end
$$;
revoke execute on function app.count_appointment_revision() from public;

create trigger appointments_revision before update on public.appointments
  for each row execute function app.count_appointment_revision();

-- ---------------------------------------------------------------------------------------
-- Calendar feed tokens: calendar apps cannot send headers, so the feed URL carries a secret.
-- Only its hash is kept; one live token per user, replaced on renewal, deleted on revocation.
-- ---------------------------------------------------------------------------------------
create table public.calendar_feed_tokens (
  user_id uuid primary key references auth.users (id) on delete cascade,
  token_hash text not null unique,
  created_at timestamptz not null default now()
);
alter table public.calendar_feed_tokens enable row level security;
alter table public.calendar_feed_tokens force row level security;

create policy calendar_feed_tokens_select_authenticated on public.calendar_feed_tokens
  for select to authenticated using (user_id = (select auth.uid()));
create policy calendar_feed_tokens_insert_authenticated on public.calendar_feed_tokens
  for insert to authenticated with check (user_id = (select auth.uid()));
create policy calendar_feed_tokens_update_authenticated on public.calendar_feed_tokens
  for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy calendar_feed_tokens_delete_authenticated on public.calendar_feed_tokens
  for delete to authenticated using (user_id = (select auth.uid()));

grant select, insert, update, delete on public.calendar_feed_tokens to authenticated;
grant all on public.calendar_feed_tokens to service_role;

-- The feed is fetched without credentials: the token's hash names the user whose identity
-- the feed's transaction then takes.
create function app.calendar_feed_owner(presented_hash text) returns uuid
  language sql stable security definer
  set search_path = ''
  as $$ select t.user_id from public.calendar_feed_tokens t where t.token_hash = presented_hash $$;
revoke execute on function app.calendar_feed_owner(text) from public;
grant execute on function app.calendar_feed_owner(text) to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Waitlist entries: who waits for a full slot of a service, in join order.
-- `offered` holds a freed place for the entry until `offer_expires_at`; accepting books it
-- (`booked`), letting it run out passes it on (`expired`, also when the place was taken by
-- someone else first). Leaving deletes the entry.
-- ---------------------------------------------------------------------------------------
create table public.waitlist_entries (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  service_id uuid not null,
  user_id uuid not null references auth.users (id) on delete cascade,
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  status text not null default 'waiting'
    check (status in ('waiting', 'offered', 'booked', 'expired')),
  offered_at timestamptz,
  offer_expires_at timestamptz,
  appointment_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (id, organization_id),
  foreign key (service_id, organization_id)
    references public.services (id, organization_id) on delete cascade,
  check (starts_at < ends_at),
  check (status <> 'offered' or offer_expires_at is not null),
  check (status <> 'booked' or appointment_id is not null)
);
-- One live entry per user and slot; a booked or expired one does not stop joining again.
create unique index waitlist_entries_one_per_slot on public.waitlist_entries
  (organization_id, service_id, starts_at, user_id) where status in ('waiting', 'offered');
-- The line of a slot, in join order: who gets the next offer.
create index waitlist_entries_line_idx on public.waitlist_entries
  (service_id, starts_at, created_at, id) where status = 'waiting';
-- Every entry of a slot by status (outstanding offers, positions).
create index waitlist_entries_slot_idx on public.waitlist_entries (service_id, starts_at, status);
-- The expiry sweep.
create index waitlist_entries_offers_due_idx on public.waitlist_entries (offer_expires_at)
  where status = 'offered';
-- The policies' columns, and a user's own list.
create index waitlist_entries_user_idx on public.waitlist_entries (user_id, created_at desc);
create index waitlist_entries_org_idx on public.waitlist_entries (organization_id, created_at);

alter table public.waitlist_entries enable row level security;
alter table public.waitlist_entries force row level security;

-- Customers read, join and leave their own entries; staff manage their organization's.
-- Customers have no update policy: an offer is taken only through app.accept_waitlist_offer(),
-- so nobody moves up the line or marks an entry booked by writing the row.
create policy waitlist_entries_select_authenticated on public.waitlist_entries
  for select to authenticated
  using (user_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
         or (select app.is_super_admin()));
create policy waitlist_entries_insert_authenticated on public.waitlist_entries
  for insert to authenticated
  with check (user_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
              or (select app.is_super_admin()));
create policy waitlist_entries_update_authenticated on public.waitlist_entries
  for update to authenticated
  using (organization_id = any ((select app.member_org_ids())::uuid[]) or (select app.is_super_admin()))
  with check (organization_id = any ((select app.member_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy waitlist_entries_delete_authenticated on public.waitlist_entries
  for delete to authenticated
  using (user_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
         or (select app.is_super_admin()));

grant select, insert, update, delete on public.waitlist_entries to authenticated;
grant all on public.waitlist_entries to service_role;

create trigger waitlist_entries_audit after insert or update or delete on public.waitlist_entries
  for each row execute function app.audit_row('waitlist_entries');
create trigger waitlist_entries_touch before update on public.waitlist_entries
  for each row execute function app.touch_updated_at();

-- A new entry always starts at the back of its line, in its service's organization, for the
-- service's current duration, whatever the writer sent.
create function app.prepare_waitlist_entry() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  duration integer;
begin
  select s.organization_id, s.duration_minutes into new.organization_id, duration
  from public.services s where s.id = new.service_id;
  new.ends_at := new.starts_at + make_interval(mins => coalesce(duration, 1));
  new.status := 'waiting';
  new.offered_at := null;
  new.offer_expires_at := null;
  new.appointment_id := null;
  new.created_at := clock_timestamp();
  return new;
end
$$;
revoke execute on function app.prepare_waitlist_entry() from public;

create trigger waitlist_entries_prepare before insert on public.waitlist_entries
  for each row execute function app.prepare_waitlist_entry();

-- ---------------------------------------------------------------------------------------
-- Places and offers. All of them run under the service's capacity lock (the advisory lock of
-- app.enforce_capacity()), so an offer never races a booking or another offer of the service.
-- ---------------------------------------------------------------------------------------
create function app.lock_service_places(service uuid) returns void
  language sql
  set search_path = ''
  as $$ select pg_advisory_xact_lock(hashtextextended(service::text, 0)) $$;

-- The most active places of a service in use at one instant of [place_start, place_end),
-- counted like app.enforce_capacity() does.
create function app.places_taken(service uuid, place_start timestamptz, place_end timestamptz)
  returns integer
  language sql stable security definer
  set search_path = ''
  as $$
    select coalesce(max(occupied.n), 0)::integer
    from (
      select place_start as at
      union
      select a.starts_at from public.appointments a
      where a.service_id = service and a.status in ('booked', 'checked_in', 'in_service')
        and a.starts_at > place_start and a.starts_at < place_end
    ) instants
    cross join lateral (
      select count(*)::integer as n
      from public.appointments b
      join public.services s on s.id = b.service_id
      where b.service_id = service
        and b.status in ('booked', 'checked_in', 'in_service')
        and b.starts_at > instants.at - interval '48 hours'
        and b.starts_at <= instants.at
        and b.ends_at + make_interval(mins => s.buffer_minutes) > instants.at
    ) occupied
  $$;
revoke execute on function app.places_taken(uuid, timestamptz, timestamptz) from public;
grant execute on function app.places_taken(uuid, timestamptz, timestamptz)
  to authenticated, service_role;

-- How many waiters of a slot joined before the given entry: its place in line, minus one.
-- Only a count, so anyone who sees an entry may learn it.
create function app.waitlist_ahead(service uuid, slot timestamptz, joined timestamptz, entry uuid)
  returns integer
  language sql stable security definer
  set search_path = ''
  as $$
    select count(*)::integer from public.waitlist_entries w
    where w.service_id = service and w.starts_at = slot and w.status = 'waiting'
      and (w.created_at, w.id) < (joined, entry)
  $$;
revoke execute on function app.waitlist_ahead(uuid, timestamptz, timestamptz, uuid) from public;
grant execute on function app.waitlist_ahead(uuid, timestamptz, timestamptz, uuid)
  to authenticated, service_role;

-- Offer the free places of the waitlisted slots of `service` that overlap [freed_start,
-- freed_end) (an appointment's time, the buffer is added here) to their first waiters. An
-- outstanding offer counts as holding a place, so a slot gets no more offers than places.
-- Each offer becomes an in-app notification, and is listed in the transaction-local setting
-- `slotease.waitlist_offers` for the API to announce once the transaction commits. The hold
-- lasts `slotease.waitlist_offer_minutes` (set by the API from its settings), else 15 minutes.
create function app.offer_waitlist_places(service uuid, freed_start timestamptz, freed_end timestamptz)
  returns integer
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  svc record;
  slot record;
  entry record;
  free integer;
  made integer := 0;
  hold interval := make_interval(mins => coalesce(
    nullif(current_setting('slotease.waitlist_offer_minutes', true), '')::integer, 15));
begin
  select s.capacity, make_interval(mins => s.buffer_minutes) as buffer, s.name,
         coalesce(o.timezone, 'UTC') as timezone
    into svc
  from public.services s left join public.organizations o on o.id = s.organization_id
  where s.id = service;
  if not found then
    return 0;
  end if;
  perform app.lock_service_places(service);

  for slot in
    select distinct w.starts_at, w.ends_at from public.waitlist_entries w
    where w.service_id = service and w.status = 'waiting'
      and w.starts_at < freed_end + svc.buffer and w.ends_at + svc.buffer > freed_start
    order by w.starts_at
  loop
    free := svc.capacity
      - app.places_taken(service, slot.starts_at, slot.ends_at + svc.buffer)
      - (select count(*)::integer from public.waitlist_entries o
         where o.service_id = service and o.starts_at = slot.starts_at and o.status = 'offered');
    continue when free <= 0;
    -- A waiter whose row is locked is leaving right now: the next one gets the place.
    for entry in
      select w.id, w.organization_id, w.user_id from public.waitlist_entries w
      where w.service_id = service and w.starts_at = slot.starts_at and w.status = 'waiting'
      order by w.created_at, w.id
      limit free
      for update skip locked
    loop
      update public.waitlist_entries w
      set status = 'offered', offered_at = now(), offer_expires_at = now() + hold
      where w.id = entry.id and w.organization_id = entry.organization_id;

      insert into public.notifications
        (organization_id, user_id, channel, template, subject, body, data, status, sent_at)
      values (
        entry.organization_id, entry.user_id, 'in_app', 'waitlist.offer',
        'A place is free',
        format('A place is free for %s on %s. It is held for you until %s.', svc.name,
               to_char(slot.starts_at at time zone svc.timezone, 'YYYY-MM-DD HH24:MI'),
               to_char((now() + hold) at time zone svc.timezone, 'HH24:MI')),
        jsonb_build_object('waitlist_entry_id', entry.id, 'service_id', service,
                           'starts_at', slot.starts_at, 'offer_expires_at', now() + hold),
        'delivered', now());

      perform set_config('slotease.waitlist_offers',
        (coalesce(nullif(current_setting('slotease.waitlist_offers', true), ''), '[]')::jsonb
         || jsonb_build_array(jsonb_build_object(
              'id', entry.id, 'organization_id', entry.organization_id,
              'service_id', service, 'user_id', entry.user_id, 'starts_at', slot.starts_at,
              'offer_expires_at', now() + hold)))::text,
        true);
      made := made + 1;
    end loop;
  end loop;
  return made;
end
$$;
revoke execute on function app.offer_waitlist_places(uuid, timestamptz, timestamptz) from public;

-- Any writer that frees a place (a cancellation, a move, a status that no longer occupies
-- it, a deletion) offers it in its own transaction. A move across monthly partitions runs as
-- a DELETE and an INSERT, hence the DELETE case.
create function app.release_waitlist_places() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  if old.status in ('booked', 'checked_in', 'in_service') and (
       tg_op = 'DELETE'
       or new.status not in ('booked', 'checked_in', 'in_service')
       or (new.service_id, new.starts_at, new.ends_at)
          is distinct from (old.service_id, old.starts_at, old.ends_at)
     ) then
    perform app.offer_waitlist_places(old.service_id, old.starts_at, old.ends_at);
  end if;
  return null;
end
$$;
revoke execute on function app.release_waitlist_places() from public;

create trigger appointments_waitlist after update or delete on public.appointments
  for each row execute function app.release_waitlist_places();

-- More capacity, or a shorter buffer, frees places too.
create function app.release_service_places() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  if new.capacity > old.capacity or new.buffer_minutes < old.buffer_minutes then
    perform app.offer_waitlist_places(new.id, '-infinity', 'infinity');
  end if;
  return null;
end
$$;
revoke execute on function app.release_service_places() from public;

create trigger services_waitlist after update of capacity, buffer_minutes on public.services
  for each row execute function app.release_service_places();

-- An offer given up by leaving passes to the next waiter.
create function app.pass_on_left_offer() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  if old.status = 'offered' then
    perform app.offer_waitlist_places(old.service_id, old.starts_at, old.ends_at);
  end if;
  return null;
end
$$;
revoke execute on function app.pass_on_left_offer() from public;

create trigger waitlist_entries_pass_on after delete on public.waitlist_entries
  for each row execute function app.pass_on_left_offer();

-- Expire the offers whose hold has run out and pass each place to the next waiter. Called
-- lazily by the API before waitlist reads and accepts, and by a periodic job. Services are
-- locked in id order so that concurrent sweeps cannot deadlock.
create function app.expire_waitlist_offers() returns integer
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  due record;
  gone record;
  expired integer := 0;
begin
  for due in
    select distinct w.service_id from public.waitlist_entries w
    where w.status = 'offered' and w.offer_expires_at <= now()
    order by w.service_id
  loop
    perform app.lock_service_places(due.service_id);
    for gone in
      update public.waitlist_entries w set status = 'expired'
      where w.service_id = due.service_id and w.status = 'offered' and w.offer_expires_at <= now()
      returning w.service_id, w.starts_at, w.ends_at
    loop
      expired := expired + 1;
      perform app.offer_waitlist_places(gone.service_id, gone.starts_at, gone.ends_at);
    end loop;
  end loop;
  return expired;
end
$$;
revoke execute on function app.expire_waitlist_offers() from public;
grant execute on function app.expire_waitlist_offers() to authenticated, service_role;

-- Take an offer: book its place for the entry's own user, or say why not. The capacity
-- trigger guards the insert; when the place went to someone else first the offer is lost
-- (expired) rather than the transaction failing, so the caller can answer and keep that.
create function app.accept_waitlist_offer(entry uuid, out outcome text, out appointment_id uuid)
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  e public.waitlist_entries;
  booked uuid;
begin
  perform app.expire_waitlist_offers();
  select * into e from public.waitlist_entries w where w.id = entry and w.user_id = auth.uid();
  if not found then
    outcome := 'not_found';
    return;
  end if;
  perform app.lock_service_places(e.service_id);
  select * into e from public.waitlist_entries w
  where w.id = entry and w.organization_id = e.organization_id
  for update;
  if e.status <> 'offered' then
    outcome := case e.status when 'booked' then 'accepted_before' else e.status end;
    appointment_id := e.appointment_id;
    return;
  end if;

  begin
    insert into public.appointments
      (organization_id, service_id, customer_id, starts_at, ends_at, booked_by)
    select e.organization_id, e.service_id, e.user_id, e.starts_at,
           e.starts_at + make_interval(mins => s.duration_minutes), auth.uid()
    from public.services s where s.id = e.service_id and s.organization_id = e.organization_id
    returning id into booked;
  exception when sqlstate 'SECAP' then
    update public.waitlist_entries w set status = 'expired'
    where w.id = entry and w.organization_id = e.organization_id;
    outcome := 'full';
    return;
  end;

  update public.waitlist_entries w set status = 'booked', appointment_id = booked
  where w.id = entry and w.organization_id = e.organization_id;
  outcome := 'booked';
  appointment_id := booked;
end
$$;
revoke execute on function app.accept_waitlist_offer(uuid) from public;
grant execute on function app.accept_waitlist_offer(uuid) to authenticated, service_role;

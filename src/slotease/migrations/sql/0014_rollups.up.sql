-- Daily figures per service and per queue kept by triggers in the writer's transaction.

-- ---------------------------------------------------------------------------------------
-- Rollups. Each row holds one day's counts and sums for a service (the day of the
-- appointment's start in the organization's timezone) or a queue (the ticket's service date),
-- so analytics answers include every committed change at once and read one row per day
-- instead of every appointment. Sums are numeric so that adding and taking away in any order
-- comes back to a recount exactly. A row whose counts all fall to zero is removed. (No
-- check that counts stay positive: an upsert checks the row it would insert, a decrement's
-- negative one, even when it updates instead.)
-- Members read their organization's rows; only the trigger functions below write them.
-- ---------------------------------------------------------------------------------------
create table public.analytics_daily_service (
  organization_id uuid not null,
  service_id uuid not null,
  day date not null,
  total integer not null default 0,
  completed integer not null default 0,
  cancelled integer not null default 0,
  no_show integer not null default 0,
  booked_minutes numeric not null default 0,
  ratings integer not null default 0,
  rating_sum integer not null default 0,
  primary key (organization_id, day, service_id)
);
create index analytics_daily_service_service_idx on public.analytics_daily_service (service_id);

create table public.analytics_daily_queue (
  organization_id uuid not null,
  queue_id uuid not null,
  day date not null,
  tickets integer not null default 0,
  served integer not null default 0,
  no_show integer not null default 0,
  cancelled integer not null default 0,
  waits integer not null default 0,
  wait_minutes_sum numeric not null default 0,
  services integer not null default 0,
  service_minutes_sum numeric not null default 0,
  -- Tickets with both a quoted and a real wait, and the sum of how far apart they were.
  estimates integer not null default 0,
  estimate_error_sum numeric not null default 0,
  primary key (organization_id, day, queue_id)
);
create index analytics_daily_queue_queue_idx on public.analytics_daily_queue (queue_id);

alter table public.analytics_daily_service enable row level security;
alter table public.analytics_daily_service force row level security;
alter table public.analytics_daily_queue enable row level security;
alter table public.analytics_daily_queue force row level security;

create policy analytics_daily_service_select_authenticated on public.analytics_daily_service
  for select to authenticated
  using (organization_id = any ((select app.member_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy analytics_daily_queue_select_authenticated on public.analytics_daily_queue
  for select to authenticated
  using (organization_id = any ((select app.member_org_ids())::uuid[]) or (select app.is_super_admin()));
revoke all on public.analytics_daily_service, public.analytics_daily_queue
  from public, anon, authenticated;
grant select on public.analytics_daily_service, public.analytics_daily_queue to authenticated;
grant all on public.analytics_daily_service, public.analytics_daily_queue to service_role;

-- ---------------------------------------------------------------------------------------
-- Adding to a day: one upsert of increments, so concurrent writers of the same day queue on
-- its row lock and none loses a count.
-- ---------------------------------------------------------------------------------------
create function app.add_daily_service(
  org uuid, service uuid, on_day date, sign integer, status text, minutes numeric,
  rating integer
) returns void
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  counted public.analytics_daily_service;
begin
  insert into public.analytics_daily_service as d
    (organization_id, service_id, day, total, completed, cancelled, no_show, booked_minutes,
     ratings, rating_sum)
  values (org, service, on_day,
          case when status is null then 0 else sign end,
          case when status = 'completed' then sign else 0 end,
          case when status = 'cancelled' then sign else 0 end,
          case when status = 'no_show' then sign else 0 end,
          case when status <> 'cancelled' then sign * minutes else 0 end,
          case when rating is null then 0 else sign end,
          sign * coalesce(rating, 0))
  on conflict (organization_id, day, service_id) do update set
    total = d.total + excluded.total,
    completed = d.completed + excluded.completed,
    cancelled = d.cancelled + excluded.cancelled,
    no_show = d.no_show + excluded.no_show,
    booked_minutes = d.booked_minutes + excluded.booked_minutes,
    ratings = d.ratings + excluded.ratings,
    rating_sum = d.rating_sum + excluded.rating_sum
  returning d.* into counted;
  if counted.total = 0 and counted.ratings = 0 then
    delete from public.analytics_daily_service d
    where d.organization_id = org and d.day = on_day and d.service_id = service;
  end if;
end
$$;

create function app.add_daily_queue(
  org uuid, queue uuid, on_day date, sign integer, status text, wait double precision,
  estimate integer, serving_at timestamptz, finished_at timestamptz
) returns void
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  counted public.analytics_daily_queue;
  served_with_time boolean := status = 'served' and serving_at is not null;
begin
  insert into public.analytics_daily_queue as d
    (organization_id, queue_id, day, tickets, served, no_show, cancelled, waits,
     wait_minutes_sum, services, service_minutes_sum, estimates, estimate_error_sum)
  values (org, queue, on_day, sign,
          case when status = 'served' then sign else 0 end,
          case when status = 'no_show' then sign else 0 end,
          case when status = 'cancelled' then sign else 0 end,
          case when wait is null then 0 else sign end,
          sign * coalesce(wait::numeric, 0),
          case when served_with_time then sign else 0 end,
          case when served_with_time
            then sign * coalesce(extract(epoch from finished_at - serving_at) / 60, 0) else 0 end,
          case when wait is null or estimate is null then 0 else sign end,
          sign * coalesce(abs(estimate - wait::numeric), 0))
  on conflict (organization_id, day, queue_id) do update set
    tickets = d.tickets + excluded.tickets,
    served = d.served + excluded.served,
    no_show = d.no_show + excluded.no_show,
    cancelled = d.cancelled + excluded.cancelled,
    waits = d.waits + excluded.waits,
    wait_minutes_sum = d.wait_minutes_sum + excluded.wait_minutes_sum,
    services = d.services + excluded.services,
    service_minutes_sum = d.service_minutes_sum + excluded.service_minutes_sum,
    estimates = d.estimates + excluded.estimates,
    estimate_error_sum = d.estimate_error_sum + excluded.estimate_error_sum
  returning d.* into counted;
  if counted.tickets = 0 then
    delete from public.analytics_daily_queue d
    where d.organization_id = org and d.day = on_day and d.queue_id = queue;
  end if;
end
$$;

create function app.organization_day(org uuid, at timestamptz) returns date
  language sql stable security definer
  set search_path = ''
  as $$
    select (at at time zone o.timezone)::date from public.organizations o where o.id = org
  $$;

revoke execute on function
  app.add_daily_service(uuid, uuid, date, integer, text, numeric, integer),
  app.add_daily_queue(uuid, uuid, date, integer, text, double precision, integer, timestamptz,
                      timestamptz),
  app.organization_day(uuid, timestamptz) from public;

-- ---------------------------------------------------------------------------------------
-- The triggers. An update takes the old row's figures off its day and adds the new row's to
-- its day; the two rows are written in key order, so two changes crossing between the same
-- days lock them in the same order and cannot deadlock. A move to another monthly partition
-- arrives as a delete and an insert, which add up the same way.
-- The triggers are deferred to the commit: a day's row is then locked after every other lock
-- the transaction takes (the capacity check's advisory lock above all), and only for the
-- commit itself, so writers never wait for it in the opposite order.
-- ---------------------------------------------------------------------------------------
-- The signs to apply, in key order: -1 takes the old row off, 1 adds the new one. Any total
-- order of the keys serves, as long as every writer uses the same.
create function app.signs_in_key_order(op text, old_key text, new_key text) returns integer[]
  language sql immutable
  set search_path = ''
  as $$
    select case
      when op = 'INSERT' then array[1]
      when op = 'DELETE' then array[-1]
      when old_key <= new_key then array[-1, 1]
      else array[1, -1]
    end
  $$;

-- A change of the figures of one service day to another: appointments and ratings alike.
create function app.change_daily_service(
  op text,
  old_org uuid, old_service uuid, old_day date, old_status text, old_minutes numeric,
  old_rating integer,
  new_org uuid, new_service uuid, new_day date, new_status text, new_minutes numeric,
  new_rating integer
) returns void
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  sign integer;
begin
  foreach sign in array app.signs_in_key_order(
    op, old_day || ' ' || old_service, new_day || ' ' || new_service
  ) loop
    if sign < 0 then
      perform app.add_daily_service(old_org, old_service, old_day, -1, old_status, old_minutes,
        old_rating);
    else
      perform app.add_daily_service(new_org, new_service, new_day, 1, new_status, new_minutes,
        new_rating);
    end if;
  end loop;
end
$$;

-- OLD is null on an insert and NEW on a delete, and so is every figure taken from them.
create function app.track_daily_service() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  perform app.change_daily_service(tg_op,
    old.organization_id, old.service_id, app.organization_day(old.organization_id, old.starts_at),
    old.status, extract(epoch from old.ends_at - old.starts_at) / 60, null,
    new.organization_id, new.service_id, app.organization_day(new.organization_id, new.starts_at),
    new.status, extract(epoch from new.ends_at - new.starts_at) / 60, null);
  return null;
end
$$;

create constraint trigger appointments_daily_service
  after insert or update of starts_at, ends_at, status, service_id or delete
  on public.appointments deferrable initially deferred
  for each row execute function app.track_daily_service();

-- A rating counts on the day and service of its appointment (which cannot move while rated:
-- the feedback's reference to it has no cascade on update).
create function app.track_daily_ratings() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  perform app.change_daily_service(tg_op,
    old.organization_id, old.service_id,
    app.organization_day(old.organization_id, old.appointment_starts_at), null, 0, old.rating,
    new.organization_id, new.service_id,
    app.organization_day(new.organization_id, new.appointment_starts_at), null, 0, new.rating);
  return null;
end
$$;

create constraint trigger feedback_daily_ratings
  after insert or update of rating, service_id, appointment_starts_at or delete
  on public.feedback deferrable initially deferred
  for each row execute function app.track_daily_ratings();

create function app.track_daily_queue() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  sign integer;
begin
  foreach sign in array app.signs_in_key_order(
    tg_op, old.service_date || ' ' || old.queue_id, new.service_date || ' ' || new.queue_id
  ) loop
    if sign < 0 then
      perform app.add_daily_queue(old.organization_id, old.queue_id, old.service_date, -1,
        old.status, old.actual_wait_minutes, old.estimated_wait_minutes, old.serving_at,
        old.finished_at);
    else
      perform app.add_daily_queue(new.organization_id, new.queue_id, new.service_date, 1,
        new.status, new.actual_wait_minutes, new.estimated_wait_minutes, new.serving_at,
        new.finished_at);
    end if;
  end loop;
  return null;
end
$$;

create constraint trigger tickets_daily_queue
  after insert or update of queue_id, service_date, status, actual_wait_minutes,
    estimated_wait_minutes, serving_at, finished_at or delete
  on public.tickets deferrable initially deferred
  for each row execute function app.track_daily_queue();

-- ---------------------------------------------------------------------------------------
-- Recount: the backfill below, after a bulk load with triggers off, and when an organization
-- changes timezone (its appointments then fall on other days).
-- ---------------------------------------------------------------------------------------
create function app.rebuild_daily_rollups(org uuid) returns void
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  delete from public.analytics_daily_service d where d.organization_id = org;
  insert into public.analytics_daily_service
    (organization_id, service_id, day, total, completed, cancelled, no_show, booked_minutes,
     ratings, rating_sum)
  select c.organization_id, c.service_id, c.day, sum(c.total), sum(c.completed),
         sum(c.cancelled), sum(c.no_show), sum(c.booked_minutes), sum(c.ratings),
         sum(c.rating_sum)
  from (
    select a.organization_id, a.service_id, (a.starts_at at time zone o.timezone)::date as day,
           1 as total, (a.status = 'completed')::integer as completed,
           (a.status = 'cancelled')::integer as cancelled,
           (a.status = 'no_show')::integer as no_show,
           case when a.status <> 'cancelled'
             then extract(epoch from a.ends_at - a.starts_at) / 60 else 0 end as booked_minutes,
           0 as ratings, 0 as rating_sum
    from public.appointments a join public.organizations o on o.id = a.organization_id
    where a.organization_id = org
    union all
    select f.organization_id, f.service_id,
           (f.appointment_starts_at at time zone o.timezone)::date, 0, 0, 0, 0, 0, 1, f.rating
    from public.feedback f join public.organizations o on o.id = f.organization_id
    where f.organization_id = org
  ) c
  group by c.organization_id, c.service_id, c.day;

  delete from public.analytics_daily_queue d where d.organization_id = org;
  insert into public.analytics_daily_queue
    (organization_id, queue_id, day, tickets, served, no_show, cancelled, waits,
     wait_minutes_sum, services, service_minutes_sum, estimates, estimate_error_sum)
  select t.organization_id, t.queue_id, t.service_date, count(*),
         count(*) filter (where t.status = 'served'),
         count(*) filter (where t.status = 'no_show'),
         count(*) filter (where t.status = 'cancelled'),
         count(t.actual_wait_minutes),
         coalesce(sum(t.actual_wait_minutes::numeric), 0),
         count(*) filter (where t.status = 'served' and t.serving_at is not null),
         coalesce(sum(extract(epoch from t.finished_at - t.serving_at) / 60)
                    filter (where t.status = 'served' and t.serving_at is not null), 0),
         count(*) filter (where t.actual_wait_minutes is not null
                            and t.estimated_wait_minutes is not null),
         coalesce(sum(abs(t.estimated_wait_minutes - t.actual_wait_minutes::numeric)), 0)
  from public.tickets t
  where t.organization_id = org
  group by t.organization_id, t.queue_id, t.service_date;
end
$$;
revoke execute on function
  app.change_daily_service(text, uuid, uuid, date, text, numeric, integer, uuid, uuid, date, text,
                           numeric, integer),
  app.track_daily_service(), app.track_daily_ratings(),
  app.track_daily_queue(), app.rebuild_daily_rollups(uuid) from public;
grant execute on function app.rebuild_daily_rollups(uuid) to service_role;

create function app.rebuild_daily_rollups_of_organization() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  perform app.rebuild_daily_rollups(new.id);
  return null;
end
$$;
revoke execute on function app.rebuild_daily_rollups_of_organization() from public;

create trigger organizations_daily_rollups
  after update of timezone on public.organizations
  for each row when (new.timezone is distinct from old.timezone)
  execute function app.rebuild_daily_rollups_of_organization();

-- Backfill.
select app.rebuild_daily_rollups(o.id) from public.organizations o;

-- ---------------------------------------------------------------------------------------
-- The daily views served what the rollups now serve: they go. The views of whole history
-- (per service, per organization, per user) stay, refreshed as before.
-- ---------------------------------------------------------------------------------------
drop function app.analytics_daily_appointments(uuid, date, date);
drop function app.analytics_daily_queues(uuid, date, date);
drop materialized view app.daily_appointment_metrics;
drop materialized view app.queue_performance;

create or replace function app.refresh_analytics_views() returns void
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  refresh materialized view concurrently app.service_performance;
  refresh materialized view concurrently app.organization_stats;
  refresh materialized view concurrently app.user_activity_summary;
end
$$;

-- Analytics: domain events recorded by the database itself, the materialized views behind the
-- dashboards (served only through tenant-checked functions), generated reports, and the
-- maintenance entry points (view refresh, partition retention, ANALYZE) for service_role.

-- ---------------------------------------------------------------------------------------
-- Domain events. Triggers write them in the same transaction as the change, for every writer
-- (the API, a job, psql), so a rolled-back change leaves no event and none is ever lost.
-- `user_id` is the actor (auth.uid()): the customer who booked, the staff member who served.
-- Properties carry ids and figures only, never personal data.
-- ---------------------------------------------------------------------------------------
create function app.record_appointment_event() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  event text;
begin
  if tg_op = 'DELETE' then
    -- Moving an appointment to another month's partition is a delete and an insert; the
    -- insert below must not count it as a new booking.
    perform set_config('slotease.moved_appointment', old.id::text, true);
    return null;
  end if;
  if tg_op = 'INSERT' then
    if current_setting('slotease.moved_appointment', true) = new.id::text then
      perform set_config('slotease.moved_appointment', '', true);
      return null;
    end if;
    event := 'appointment.booked';
  elsif new.status is distinct from old.status then
    event := 'appointment.' || new.status;
  else
    return null;
  end if;
  insert into public.analytics_events (organization_id, user_id, event_type, properties)
  values (new.organization_id, auth.uid(), event,
          jsonb_build_object('appointment_id', new.id, 'service_id', new.service_id,
                             'starts_at', new.starts_at));
  return null;
end
$$;

create trigger appointments_analytics after insert or delete or update of status
  on public.appointments for each row execute function app.record_appointment_event();

create function app.record_ticket_event() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  if tg_op = 'UPDATE' and new.status is not distinct from old.status then
    return null;
  end if;
  insert into public.analytics_events (organization_id, user_id, event_type, properties)
  values (new.organization_id, auth.uid(),
          case when tg_op = 'INSERT' then 'ticket.created' else 'ticket.' || new.status end,
          jsonb_strip_nulls(jsonb_build_object(
            'ticket_id', new.id, 'queue_id', new.queue_id,
            'wait_minutes', case when new.status = 'called' then new.actual_wait_minutes end,
            'service_minutes', case when new.status = 'served'
              then extract(epoch from new.finished_at - new.serving_at) / 60 end)));
  return null;
end
$$;

create trigger tickets_analytics after insert or update of status
  on public.tickets for each row execute function app.record_ticket_event();

create function app.record_feedback_event() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  insert into public.analytics_events (organization_id, user_id, event_type, properties)
  values (new.organization_id, auth.uid(), 'feedback.given',
          jsonb_build_object('appointment_id', new.appointment_id,
                             'service_id', new.service_id, 'rating', new.rating));
  return null;
end
$$;

create trigger feedback_analytics after insert
  on public.feedback for each row execute function app.record_feedback_event();

revoke execute on function app.record_appointment_event(), app.record_ticket_event(),
  app.record_feedback_event() from public;

-- ---------------------------------------------------------------------------------------
-- Materialized views. They have no row-level security: nobody but their owner and
-- service_role may read them, and the API reads them through the functions further down.
-- Each has a unique index so that it can be refreshed CONCURRENTLY (readers never block).
-- Sums and counts are kept beside averages so that days and services add up exactly.
-- ---------------------------------------------------------------------------------------
create materialized view app.daily_appointment_metrics as
  select a.organization_id,
         a.service_id,
         (a.starts_at at time zone o.timezone)::date as day,
         count(*)::integer as total,
         (count(*) filter (where a.status = 'completed'))::integer as completed,
         (count(*) filter (where a.status = 'cancelled'))::integer as cancelled,
         (count(*) filter (where a.status = 'no_show'))::integer as no_show,
         coalesce(sum(extract(epoch from a.ends_at - a.starts_at) / 60)
                    filter (where a.status <> 'cancelled'), 0)::double precision as booked_minutes,
         count(f.rating)::integer as ratings,
         coalesce(sum(f.rating), 0)::integer as rating_sum
  from public.appointments a
  join public.organizations o on o.id = a.organization_id
  left join public.feedback f
    on f.appointment_id = a.id and f.organization_id = a.organization_id
  group by 1, 2, 3;
create unique index daily_appointment_metrics_key
  on app.daily_appointment_metrics (organization_id, day, service_id);

create materialized view app.queue_performance as
  select t.organization_id,
         t.queue_id,
         t.service_date as day,
         count(*)::integer as tickets,
         (count(*) filter (where t.status = 'served'))::integer as served,
         (count(*) filter (where t.status = 'no_show'))::integer as no_show,
         (count(*) filter (where t.status = 'cancelled'))::integer as cancelled,
         count(t.actual_wait_minutes)::integer as waits,
         coalesce(sum(t.actual_wait_minutes), 0)::double precision as wait_minutes_sum,
         (count(*) filter (where t.status = 'served' and t.serving_at is not null))::integer
           as services,
         coalesce(sum(extract(epoch from t.finished_at - t.serving_at) / 60)
                    filter (where t.status = 'served' and t.serving_at is not null), 0)
           ::double precision as service_minutes_sum,
         -- How far the quoted wait was from the real one, on average.
         avg(abs(t.estimated_wait_minutes - t.actual_wait_minutes))::double precision
           as estimate_error_minutes
  from public.tickets t
  group by 1, 2, 3;
create unique index queue_performance_key on app.queue_performance (organization_id, day, queue_id);

create materialized view app.service_performance as
  select a.organization_id,
         a.service_id,
         count(*)::integer as total,
         (count(*) filter (where a.status = 'completed'))::integer as completed,
         (count(*) filter (where a.status = 'cancelled'))::integer as cancelled,
         (count(*) filter (where a.status = 'no_show'))::integer as no_show,
         count(f.rating)::integer as ratings,
         avg(f.rating)::double precision as rating_avg,
         min(a.starts_at) as first_at,
         max(a.starts_at) as last_at
  from public.appointments a
  left join public.feedback f
    on f.appointment_id = a.id and f.organization_id = a.organization_id
  group by 1, 2;
create unique index service_performance_key on app.service_performance (organization_id, service_id);

create materialized view app.organization_stats as
  select o.id as organization_id,
         (select count(*) from public.organization_members m
          where m.organization_id = o.id)::integer as members,
         (select count(*) from public.services s
          where s.organization_id = o.id and s.is_active)::integer as active_services,
         (select count(*) from public.queues q
          where q.organization_id = o.id and q.is_active)::integer as active_queues,
         coalesce(a.total, 0)::integer as appointments_total,
         coalesce(a.last_30_days, 0)::integer as appointments_last_30_days,
         coalesce(a.customers, 0)::integer as customers,
         (select count(*) from public.tickets t where t.organization_id = o.id)::integer
           as tickets_total,
         (select avg(f.rating) from public.feedback f where f.organization_id = o.id)
           ::double precision as rating_avg
  from public.organizations o
  left join lateral (
    select count(*) as total,
           count(*) filter (where x.starts_at >= now() - interval '30 days'
                            and x.starts_at < now()) as last_30_days,
           count(distinct x.customer_id) as customers
    from public.appointments x
    where x.organization_id = o.id
  ) a on true;
create unique index organization_stats_key on app.organization_stats (organization_id);

create materialized view app.user_activity_summary as
  select e.organization_id,
         e.user_id,
         count(*)::integer as events,
         count(distinct e.event_type)::integer as event_types,
         min(e.occurred_at) as first_at,
         max(e.occurred_at) as last_at
  from public.analytics_events e
  where e.organization_id is not null and e.user_id is not null
  group by 1, 2;
create unique index user_activity_summary_key on app.user_activity_summary (organization_id, user_id);

revoke all on app.daily_appointment_metrics, app.queue_performance, app.service_performance,
  app.organization_stats, app.user_activity_summary from public, anon, authenticated;
grant select on app.daily_appointment_metrics, app.queue_performance, app.service_performance,
  app.organization_stats, app.user_activity_summary to service_role;

-- ---------------------------------------------------------------------------------------
-- The views as the API sees them: one organization at a time, and only for its members
-- (daily figures) or admins (everything else); anyone else gets no rows.
-- ---------------------------------------------------------------------------------------
create function app.analytics_daily_appointments(org uuid, from_day date, to_day date)
  returns setof app.daily_appointment_metrics
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  if not app.is_org_member(org) then
    return;
  end if;
  return query select m.* from app.daily_appointment_metrics m
    where m.organization_id = org and m.day between from_day and to_day;
end
$$;

create function app.analytics_daily_queues(org uuid, from_day date, to_day date)
  returns setof app.queue_performance
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  if not app.is_org_member(org) then
    return;
  end if;
  return query select m.* from app.queue_performance m
    where m.organization_id = org and m.day between from_day and to_day;
end
$$;

create function app.analytics_service_performance(org uuid)
  returns setof app.service_performance
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  if not app.is_org_admin(org) then
    return;
  end if;
  return query select m.* from app.service_performance m where m.organization_id = org;
end
$$;

create function app.analytics_organization_stats(org uuid)
  returns setof app.organization_stats
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  if not app.is_org_admin(org) then
    return;
  end if;
  return query select m.* from app.organization_stats m where m.organization_id = org;
end
$$;

create function app.analytics_user_activity(org uuid)
  returns setof app.user_activity_summary
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  if not app.is_org_admin(org) then
    return;
  end if;
  return query select m.* from app.user_activity_summary m where m.organization_id = org;
end
$$;

revoke execute on function app.analytics_daily_appointments(uuid, date, date),
  app.analytics_daily_queues(uuid, date, date), app.analytics_service_performance(uuid),
  app.analytics_organization_stats(uuid), app.analytics_user_activity(uuid) from public;
grant execute on function app.analytics_daily_appointments(uuid, date, date),
  app.analytics_daily_queues(uuid, date, date), app.analytics_service_performance(uuid),
  app.analytics_organization_stats(uuid), app.analytics_user_activity(uuid)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Reports: requested by an organization's admins, generated by the system (service_role).
-- ---------------------------------------------------------------------------------------
create table public.analytics_reports (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  requested_by uuid references auth.users (id) on delete set null,
  kind text not null check (kind in ('appointments', 'queues', 'feedback')),
  format text not null check (format in ('csv', 'json', 'pdf')),
  from_date date not null,
  to_date date not null,
  status text not null default 'pending' check (status in ('pending', 'ready', 'failed')),
  content bytea,
  content_type text,
  error text,
  created_at timestamptz not null default now(),
  finished_at timestamptz,
  primary key (id, organization_id),
  check (from_date <= to_date)
);
create index analytics_reports_org_idx on public.analytics_reports (organization_id, created_at desc);
create index analytics_reports_pending_idx on public.analytics_reports (created_at)
  where status = 'pending';

alter table public.analytics_reports enable row level security;
alter table public.analytics_reports force row level security;

create policy analytics_reports_select_authenticated on public.analytics_reports
  for select to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
-- A request starts empty and pending: only the generator fills it in.
create policy analytics_reports_insert_authenticated on public.analytics_reports
  for insert to authenticated
  with check ((organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()))
              and status = 'pending' and content is null);
grant select, insert on public.analytics_reports to authenticated;
grant all on public.analytics_reports to service_role;

-- ---------------------------------------------------------------------------------------
-- Maintenance entry points for service_role (the scheduled jobs and `slotease db
-- maintenance`): they need the owner's rights, hence security definer.
-- ---------------------------------------------------------------------------------------
create function app.refresh_analytics_views() returns void
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  refresh materialized view concurrently app.daily_appointment_metrics;
  refresh materialized view concurrently app.queue_performance;
  refresh materialized view concurrently app.service_performance;
  refresh materialized view concurrently app.organization_stats;
  refresh materialized view concurrently app.user_activity_summary;
end
$$;

-- Detach and drop the monthly partitions (named <parent>_pYYYYMM by
-- app.ensure_monthly_partitions) whose whole month lies before `cutoff`; returns their names.
create function app.drop_partitions_before(parent regclass, cutoff timestamptz)
  returns setof text
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  part record;
begin
  for part in
    select c.oid::regclass as rel, c.relname
    from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = parent
      and c.relname ~ '_p[0-9]{6}$'
      and (to_date(right(c.relname, 6), 'YYYYMM') + interval '1 month')::timestamp
          at time zone 'UTC' <= cutoff
    order by c.relname
  loop
    execute format('alter table %s detach partition %s', parent, part.rel);
    execute format('drop table %s', part.rel);
    return next part.relname::text;
  end loop;
end
$$;

create function app.analyze_tables(tables regclass[]) returns void
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  t regclass;
begin
  foreach t in array tables loop
    execute format('analyze %s', t);
  end loop;
end
$$;

revoke execute on function app.refresh_analytics_views(),
  app.drop_partitions_before(regclass, timestamptz), app.analyze_tables(regclass[]) from public;
grant execute on function app.refresh_analytics_views(),
  app.drop_partitions_before(regclass, timestamptz), app.analyze_tables(regclass[])
  to service_role;

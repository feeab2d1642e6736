-- Undo 0014.
-- The daily views of 0007, as they were.
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

revoke all on app.daily_appointment_metrics, app.queue_performance from public, anon, authenticated;
grant select on app.daily_appointment_metrics, app.queue_performance to service_role;

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

revoke execute on function app.analytics_daily_appointments(uuid, date, date),
  app.analytics_daily_queues(uuid, date, date) from public;
grant execute on function app.analytics_daily_appointments(uuid, date, date),
  app.analytics_daily_queues(uuid, date, date) to authenticated, service_role;

create or replace function app.refresh_analytics_views() returns void
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

drop trigger if exists organizations_daily_rollups on public.organizations;
drop function if exists app.rebuild_daily_rollups_of_organization();
drop function if exists app.rebuild_daily_rollups(uuid);
drop trigger if exists tickets_daily_queue on public.tickets;
drop function if exists app.track_daily_queue();
drop trigger if exists feedback_daily_ratings on public.feedback;
drop function if exists app.track_daily_ratings();
drop trigger if exists appointments_daily_service on public.appointments;
drop function if exists app.track_daily_service();
drop function if exists app.change_daily_service(text, uuid, uuid, date, text, numeric, integer,
  uuid, uuid, date, text, numeric, integer);
drop function if exists app.signs_in_key_order(text, text, text);
drop function if exists app.organization_day(uuid, timestamptz);
drop function if exists app.add_daily_queue(uuid, uuid, date, integer, text, double precision,
  integer, timestamptz, timestamptz);
drop function if exists app.add_daily_service(uuid, uuid, date, integer, text, numeric, integer);
drop table if exists public.analytics_daily_queue;
drop table if exists public.analytics_daily_service;

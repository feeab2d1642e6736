-- Jobs and notifications. procrastinate's own schema (tables, types, functions) has just been
-- applied from the installed package; this file locks it down and adds what the API needs
-- to enqueue jobs inside the request's transaction.

-- ---------------------------------------------------------------------------------------
-- procrastinate's tables are system tables: only service_role (the worker) touches them.
-- RLS with no policy keeps them closed even where a platform grants public tables to the
-- API roles by default (Supabase does).
-- ---------------------------------------------------------------------------------------
do $$
declare
  t text;
  f regprocedure;
begin
  foreach t in array array[
    'procrastinate_jobs', 'procrastinate_workers', 'procrastinate_periodic_defers',
    'procrastinate_events'
  ] loop
    execute format('alter table public.%I enable row level security', t);
    execute format('alter table public.%I force row level security', t);
    execute format('revoke all on public.%I from public, anon, authenticated', t);
    execute format('grant select, insert, update, delete on public.%I to service_role', t);
  end loop;
  for f in
    select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public' and p.proname like 'procrastinate\_%'
  loop
    execute format('revoke execute on function %s from public', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
grant usage, select on sequence public.procrastinate_jobs_id_seq,
  public.procrastinate_periodic_defers_id_seq, public.procrastinate_events_id_seq,
  public.procrastinate_workers_id_seq to service_role;

-- ---------------------------------------------------------------------------------------
-- Enqueueing from a request. The caller's role may not write the job tables, so the insert
-- goes through these owner-run functions; being plain statements of the request's
-- transaction, the job exists if and only if the change that caused it commits.
-- The workers re-read every fact from the database before acting, so a job enqueued by a
-- caller can make nothing happen that the data does not justify.
-- ---------------------------------------------------------------------------------------
create function app.enqueue_job(
  queue text, task text, args jsonb, scheduled_at timestamptz default null,
  lock text default null, queueing_lock text default null
) returns bigint
  language sql security definer
  set search_path = pg_catalog, public, pg_temp
  as $$
    select (public.procrastinate_defer_jobs_v1(array[
      row(queue, task, 0, lock, queueing_lock, args, scheduled_at)::public.procrastinate_job_to_defer_v1
    ]))[1]
  $$;

-- Reminders are jobs whose queueing lock is 'reminder:<appointment>:<offset>'. A change of
-- the appointment drops those still waiting and schedules them again for its new start (none
-- once it is no longer booked): that is how a reschedule moves them and a cancellation
-- removes them.
create function app.drop_reminders(appointment_id uuid) returns integer
  language sql security definer
  set search_path = pg_catalog, public, pg_temp
  as $$
    select count(public.procrastinate_cancel_job_v1(j.id, false, true))::integer
    from public.procrastinate_jobs j
    where j.status = 'todo' and j.queueing_lock like 'reminder:' || appointment_id::text || ':%'
  $$;

revoke execute on function app.enqueue_job(text, text, jsonb, timestamptz, text, text),
  app.drop_reminders(uuid) from public;
grant execute on function app.enqueue_job(text, text, jsonb, timestamptz, text, text),
  app.drop_reminders(uuid) to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Notifications: the device a push goes to; the fallback order names only real channels.
-- ---------------------------------------------------------------------------------------
alter table public.notification_preferences add column push_token text
  check (length(push_token) <= 4096);
alter table public.notification_preferences add constraint notification_preferences_fallback_check
  check (fallback_order <@ array['push', 'sms', 'email']::text[]);

-- Undo 0011. The worker role stays (roles are cluster-wide and may serve other databases); it
-- loses service_role, and the API role gets it back.
drop function app.reopen_webhook_delivery(uuid), app.record_webhook_deliveries(uuid, text, jsonb), app.metrics_counts(integer),
  app.revoke_refresh_family(text), app.session_user_of(text), app.spend_refresh_token(text),
  app.issue_refresh_token(uuid, text, integer), app.record_sign_in(text),
  app.sign_up(text, text, text, text), app.sign_in_candidate(text);

drop function app.expire_called_tickets(uuid);
alter function app.expire_called_tickets_unchecked(uuid) rename to expire_called_tickets;
grant execute on function app.expire_called_tickets(uuid) to anon, authenticated, service_role;

create or replace function app.drop_reminders(appointment_id uuid) returns integer
  language sql security definer
  set search_path = pg_catalog, public, pg_temp
  as $$
    select count(public.procrastinate_cancel_job_v1(j.id, false, true))::integer
    from public.procrastinate_jobs j
    where j.status = 'todo' and j.queueing_lock like 'reminder:' || appointment_id::text || ':%'
  $$;

create or replace function app.enqueue_job(
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

drop function app.caller_relates_to(uuid), app.called_by_api_role();

grant service_role to slotease_app;
revoke service_role from slotease_worker;

alter table public.notification_preferences
  drop constraint if exists notification_preferences_fallback_check,
  drop column if exists push_token;
drop function if exists app.drop_reminders(uuid);
drop function if exists app.enqueue_job(text, text, jsonb, timestamptz, text, text);

drop table if exists public.procrastinate_events, public.procrastinate_periodic_defers,
  public.procrastinate_jobs, public.procrastinate_workers cascade;
do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public' and p.proname like 'procrastinate\_%'
  loop
    execute format('drop function %s cascade', f);
  end loop;
end
$$;
drop type if exists public.procrastinate_job_to_defer_v1, public.procrastinate_job_event_type,
  public.procrastinate_job_status;

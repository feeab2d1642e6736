-- Back to 0017: the request-path enqueue of 0015, the strictly append-only audit log of
-- 0001, no consents, erasure, retention or export functions.
create or replace function app.enqueue_job(
  queue text, task text, args jsonb, scheduled_at timestamptz default null,
  lock text default null, queueing_lock text default null, priority integer default 0
) returns bigint
  language plpgsql security definer
  set search_path = pg_catalog, public, pg_temp
  as $$
declare
  job_id bigint := app.enqueue_job_checked(queue, task, args, scheduled_at, lock, queueing_lock);
begin
  -- Still invisible to the workers: the job is theirs only once this transaction commits.
  update public.procrastinate_jobs j set priority = enqueue_job.priority where j.id = job_id;
  return job_id;
end
$$;

revoke execute on function app.redact_secrets(jsonb) from authenticated;
drop function app.personal_records_of(uuid);
drop function app.close_my_account();
drop function app.my_password_hash();
drop function app.apply_text_retention(timestamptz, timestamptz, timestamptz, timestamptz);
drop function app.erase_user(uuid);
drop function app.erase_from_jsonb(jsonb, text[]);

create or replace function app.reject_audit_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  raise exception 'audit_log is append-only' using errcode = '42501';
end
$$;

drop table public.consent_events;

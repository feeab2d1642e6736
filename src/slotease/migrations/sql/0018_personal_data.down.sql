-- Back to 0017: its request-path enqueue, the strictly append-only audit log of
-- 0001, no consents, erasure, retention or export functions.
create or replace function app.enqueue_job(
  queue text, task text, args jsonb, scheduled_at timestamptz default null,
  lock text default null, queueing_lock text default null, priority integer default 0
) returns bigint
  language plpgsql security definer
  set search_path = pg_catalog, public, pg_temp
  as $$
declare
  job_id bigint;
  own_token boolean := false;
begin
  if task in ('auth.send_password_reset', 'auth.send_verification') then
    if app.called_by_api_role() then
      begin
        own_token := exists (
          select 1 from app.account_tokens t
          where t.id = (args ->> 'token_id')::uuid and t.created_at = now()
            and t.purpose = case task when 'auth.send_password_reset' then 'reset'
                                      else 'verify' end);
      exception when invalid_text_representation then
        own_token := false;
      end;
      if not own_token then
        raise exception 'this job may not be enqueued by the caller'
          using errcode = 'insufficient_privilege';
      end if;
    end if;
    job_id := (public.procrastinate_defer_jobs_v1(array[
      row(queue, task, 0, lock, queueing_lock, args, scheduled_at)::public.procrastinate_job_to_defer_v1
    ]))[1];
  else
    job_id := app.enqueue_job_checked(queue, task, args, scheduled_at, lock, queueing_lock);
  end if;
  -- Still invisible to the workers: the job is theirs only once this transaction commits.
  update public.procrastinate_jobs j set priority = enqueue_job.priority where j.id = job_id;
  return job_id;
end
$$;

revoke execute on function app.redact_secrets(jsonb) from authenticated;
drop function app.personal_records_of(uuid);
drop function app.close_my_account();
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

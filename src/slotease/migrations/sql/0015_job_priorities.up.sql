-- Job queues and priorities: interactive before bulk, retries last.

-- ---------------------------------------------------------------------------------------
-- Enqueueing from a request takes the job's priority. The caller checks of 0011 stay in the
-- function they were written in, now reached only through this one.
-- ---------------------------------------------------------------------------------------
alter function app.enqueue_job(text, text, jsonb, timestamptz, text, text)
  rename to enqueue_job_checked;
revoke execute on function app.enqueue_job_checked(text, text, jsonb, timestamptz, text, text)
  from anon, authenticated, service_role;

create function app.enqueue_job(
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
revoke execute on function app.enqueue_job(text, text, jsonb, timestamptz, text, text, integer)
  from public;
grant execute on function app.enqueue_job(text, text, jsonb, timestamptz, text, text, integer)
  to anon, authenticated, service_role;

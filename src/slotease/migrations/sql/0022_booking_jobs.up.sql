set local lock_timeout = '5s';

-- Booking jobs in one statement (issue 14). A booking owes its confirmation and its
-- reminders; sent one `app.enqueue_job` call each, they were so many round trips inside the
-- window in which the service's capacity lock is held (from the INSERT to the COMMIT). The
-- jobs of a list go in the given order, each through `app.enqueue_job` and so through every
-- check a single one passes: security invoker, the caller needs nothing it did not have.
create function app.enqueue_jobs(jobs jsonb) returns setof bigint
  language sql volatile security invoker
  set search_path = ''
  as $$
    select app.enqueue_job(
      e.job ->> 'queue', e.job ->> 'task', e.job -> 'args',
      (e.job ->> 'scheduled_at')::timestamptz, e.job ->> 'lock', e.job ->> 'queueing_lock',
      coalesce((e.job ->> 'priority')::integer, 0))
    from jsonb_array_elements(jobs) with ordinality as e (job, n)
    order by e.n
  $$;
revoke execute on function app.enqueue_jobs(jsonb) from public;
grant execute on function app.enqueue_jobs(jsonb) to anon, authenticated, service_role;

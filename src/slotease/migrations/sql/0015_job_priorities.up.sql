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

-- ---------------------------------------------------------------------------------------
-- In-app messages of a send are delivered in the sender's own transaction, with no job: the
-- sender reads what rendering needs and records the outcome, for the in-app rows this very
-- transaction inserted (the insert policy of 0010 decided whom they may message) and nothing
-- else. The recipient's preference is read here, since the sender may not read it otherwise.
-- ---------------------------------------------------------------------------------------
create function app.in_app_to_deliver(ids uuid[])
  returns table (id uuid, created_at timestamptz, organization_id uuid, user_id uuid,
                 template text, subject text, body text, data jsonb, full_name text,
                 locale text, pref_in_app boolean, organization_name text, templates jsonb)
  language sql stable security definer
  set search_path = ''
  as $$
    select n.id, n.created_at, n.organization_id, n.user_id, n.template, n.subject, n.body,
           n.data, p.full_name, coalesce(p.locale, 'en'), coalesce(f.in_app, true), o.name,
           coalesce(o.settings -> 'templates', '{}')
    from public.notifications n
    left join public.user_profiles p on p.user_id = n.user_id
    left join public.notification_preferences f on f.user_id = n.user_id
    left join public.organizations o on o.id = n.organization_id
    where n.id = any (ids) and n.created_at = now() and n.channel = 'in_app'
      and n.status = 'queued' and coalesce(app.is_org_member(n.organization_id), false)
    order by n.id
  $$;

create function app.record_in_app(
  notification_id uuid, outcome text, rendered_subject text, rendered_body text, error text
) returns void
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  if outcome not in ('delivered', 'skipped', 'failed') then
    raise exception 'an in-app message is delivered, skipped or failed'
      using errcode = 'check_violation';
  end if;
  update public.notifications n
  set status = outcome, subject = coalesce(rendered_subject, n.subject),
      body = coalesce(rendered_body, n.body), last_error = error,
      provider = case when outcome = 'delivered' then 'in_app' end,
      sent_at = case when outcome = 'delivered' then now() end
  where n.id = notification_id and n.created_at = now() and n.channel = 'in_app'
    and n.status = 'queued' and coalesce(app.is_org_member(n.organization_id), false);
  if not found then
    raise exception 'no in-app message of this transaction to record'
      using errcode = 'insufficient_privilege';
  end if;
end
$$;
revoke execute on function app.in_app_to_deliver(uuid[]),
  app.record_in_app(uuid, text, text, text, text) from public;
grant execute on function app.in_app_to_deliver(uuid[]),
  app.record_in_app(uuid, text, text, text, text) to authenticated;

-- Least privilege: split login roles, caller-checked SECURITY DEFINER functions, audit redaction, database-side refusals.

-- ---------------------------------------------------------------------------------------
-- Login roles. The API's (slotease_app) may become only anon or authenticated; jobs and
-- maintenance log in as slotease_worker, the one login role that may become service_role.
-- Roles are cluster-wide: created only where absent, memberships changed only where needed.
-- ---------------------------------------------------------------------------------------
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'slotease_worker') then
    create role slotease_worker login noinherit;
  end if;
  if pg_has_role('slotease_app', 'service_role', 'member') then
    revoke service_role from slotease_app;
  end if;
end
$$;
grant service_role to slotease_worker;

-- ---------------------------------------------------------------------------------------
-- Who is calling a SECURITY DEFINER function: inside one, current_user is the owner, but the
-- role the transaction switched to (SET ROLE) is still the `role` setting. Only the API roles
-- are restricted; service_role and the owner reach these functions by their own grants.
-- ---------------------------------------------------------------------------------------
create function app.called_by_api_role() returns boolean
  language sql stable
  set search_path = ''
  as $$ select current_setting('role') in ('anon', 'authenticated') $$;

-- Whether the caller has business with an organization: a member (or its API key), or a
-- customer with an appointment, a ticket or a waitlist entry there.
create function app.caller_relates_to(org uuid) returns boolean
  language plpgsql stable security definer
  set search_path = ''
  as $$
declare
  me uuid := auth.uid();
begin
  if org is null then
    return false;
  end if;
  if org = any (app.member_org_ids()) then
    return true;
  end if;
  if me is null then
    return false;
  end if;
  return exists (select 1 from public.appointments a
                 where a.organization_id = org and a.customer_id = me)
      or exists (select 1 from public.tickets t where t.organization_id = org and t.user_id = me)
      or exists (select 1 from public.waitlist_entries w
                 where w.organization_id = org and w.user_id = me);
end
$$;
revoke execute on function app.called_by_api_role(), app.caller_relates_to(uuid) from public;

-- ---------------------------------------------------------------------------------------
-- Enqueueing from a request: only the tasks the request path enqueues, each about a row of an
-- organization the caller has business with. The worker (service_role) enqueues anything.
-- ---------------------------------------------------------------------------------------
create or replace function app.enqueue_job(
  queue text, task text, args jsonb, scheduled_at timestamptz default null,
  lock text default null, queueing_lock text default null
) returns bigint
  language plpgsql security definer
  -- procrastinate's functions name their tables unqualified.
  set search_path = pg_catalog, public, pg_temp
  as $$
declare
  subject_org uuid;
  subject uuid;
  ids uuid[];
  offered_now boolean := false;
begin
  if app.called_by_api_role() then
    begin
      case task
        when 'notifications.notify_event' then
          subject := (args ->> 'subject_id')::uuid;
          subject_org := case split_part(args ->> 'event', '.', 1)
            when 'appointment' then
              (select a.organization_id from public.appointments a where a.id = subject)
            when 'ticket' then
              (select t.organization_id from public.tickets t where t.id = subject)
          end;
          if split_part(args ->> 'event', '.', 1) = 'waitlist' then
            -- An offer made by this very transaction (a place someone else freed) is news for
            -- its waiter, whoever freed the place.
            select w.organization_id, w.offered_at = now() into subject_org, offered_now
            from public.waitlist_entries w where w.id = subject and w.status = 'offered';
          end if;
        when 'notifications.remind' then
          subject := (args ->> 'appointment_id')::uuid;
          subject_org := (select a.organization_id from public.appointments a where a.id = subject);
          if queueing_lock is distinct from
             'reminder:' || subject::text || ':' || (args ->> 'offset') then
            subject_org := null;
          end if;
        when 'notifications.deliver' then
          ids := array(select jsonb_array_elements_text(args -> 'ids')::uuid);
          -- Sending is for the organization's own members, and all of one organization.
          select min(n.organization_id::text)::uuid into subject_org
          from public.notifications n
          where n.id = any (ids) and n.organization_id = any (app.member_org_ids())
          having count(*) = cardinality(ids) and count(distinct n.organization_id) = 1;
        when 'webhooks.deliver' then
          subject := (args ->> 'delivery_id')::uuid;
          subject_org := (select d.organization_id from public.webhook_deliveries d
                          where d.id = subject and d.status = 'pending');
        when 'organizations.send_invitation' then
          subject := (args ->> 'invitation_id')::uuid;
          subject_org := (select i.organization_id from public.invitations i
                          where i.id = subject and i.organization_id = any (app.admin_org_ids()));
        when 'analytics.generate_report' then
          subject := (args ->> 'report_id')::uuid;
          subject_org := (select r.organization_id from public.analytics_reports r
                          where r.id = subject and r.status = 'pending'
                            and r.organization_id = any (app.admin_org_ids()));
        else
          subject_org := null;
      end case;
    exception when invalid_text_representation then
      subject_org := null;
    end;
    if not (coalesce(offered_now, false) or app.caller_relates_to(subject_org)) then
      raise exception 'this job may not be enqueued by the caller'
        using errcode = 'insufficient_privilege';
    end if;
  end if;
  return (public.procrastinate_defer_jobs_v1(array[
    row(queue, task, 0, lock, queueing_lock, args, scheduled_at)::public.procrastinate_job_to_defer_v1
  ]))[1];
end
$$;

create or replace function app.drop_reminders(appointment_id uuid) returns integer
  language plpgsql security definer
  set search_path = pg_catalog, public, pg_temp
  as $$
begin
  if app.called_by_api_role() and not exists (
    select 1 from public.appointments a
    where a.id = drop_reminders.appointment_id
      and (a.customer_id = auth.uid() or a.organization_id = any (app.member_org_ids()))
  ) then
    raise exception 'only the appointment''s customer or staff may move its reminders'
      using errcode = 'insufficient_privilege';
  end if;
  return (
    select count(public.procrastinate_cancel_job_v1(j.id, false, true))::integer
    from public.procrastinate_jobs j
    where j.status = 'todo'
      and j.queueing_lock like 'reminder:' || drop_reminders.appointment_id::text || ':%'
  );
end
$$;

-- ---------------------------------------------------------------------------------------
-- The grace-period sweep: from a request, one queue at a time, and the people it names are
-- shown only to that queue's staff (the worker sweeps every queue).
-- ---------------------------------------------------------------------------------------
alter function app.expire_called_tickets(uuid) rename to expire_called_tickets_unchecked;
revoke execute on function app.expire_called_tickets_unchecked(uuid)
  from anon, authenticated, service_role;

create function app.expire_called_tickets(queue uuid default null)
  returns table (id uuid, queue_id uuid, organization_id uuid, user_id uuid, number integer,
                 prefix text, service_date date, status text, counter text, priority smallint,
                 appointment_id uuid)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  if not app.called_by_api_role() then
    return query select * from app.expire_called_tickets_unchecked(queue);
    return;
  end if;
  if queue is null then
    raise exception 'a request sweeps one queue at a time'
      using errcode = 'insufficient_privilege';
  end if;
  return query
    select e.id, e.queue_id, e.organization_id,
           case when e.organization_id = any (app.member_org_ids()) or e.user_id = auth.uid()
                then e.user_id end,
           e.number, e.prefix, e.service_date, e.status, e.counter, e.priority,
           e.appointment_id
    from app.expire_called_tickets_unchecked(queue) e;
end
$$;
revoke execute on function app.expire_called_tickets(uuid) from public;
grant execute on function app.expire_called_tickets(uuid) to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Pre-identity steps of the request path, each answering only what the step needs. Once the
-- caller proved who they are (a password, a refresh token), the transaction acts as that user
-- and the session is written by functions that act on auth.uid() alone.
-- ---------------------------------------------------------------------------------------
-- Sign-in by email: the account the address names, with the hash the password is checked
-- against.
create function app.sign_in_candidate(address text)
  returns table (id uuid, email text, encrypted_password text, full_name text)
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return query
    select u.id, u.email::text, u.encrypted_password::text, coalesce(p.full_name, '')::text
    from auth.users u left join public.user_profiles p on p.user_id = u.id
    where lower(u.email) = lower(address);
end
$$;

-- Sign-up: a new account and its profile; no row when the address is taken (whatever unique
-- index says so: ours is on lower(email), Supabase's own schema has others).
create function app.sign_up(address text, password_hash text, full_name text, phone text)
  returns table (id uuid, email text)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  created uuid;
  created_email text;
begin
  insert into auth.users (email, encrypted_password, last_sign_in_at)
  values (address, password_hash, now())
  on conflict do nothing
  returning auth.users.id, auth.users.email into created, created_email;
  if created is null then
    return;
  end if;
  insert into public.user_profiles (user_id, full_name, phone)
  values (created, sign_up.full_name, sign_up.phone);
  return query select created, created_email;
end
$$;

-- The signed-in user's own sign-in stamp (and a stronger hash when the parameters changed).
create function app.record_sign_in(new_password_hash text) returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update auth.users u set last_sign_in_at = now(), updated_at = now(),
    encrypted_password = coalesce(new_password_hash, u.encrypted_password)
  where u.id = auth.uid();
end
$$;

-- A refresh token for the signed-in user, in a family that is theirs (or new).
create function app.issue_refresh_token(family uuid, token_hash text, ttl_days integer)
  returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  me uuid := auth.uid();
begin
  if me is null or exists (select 1 from app.refresh_tokens t
                           where t.family_id = family and t.user_id <> me) then
    raise exception 'a session is issued only to its own user'
      using errcode = 'insufficient_privilege';
  end if;
  insert into app.refresh_tokens (user_id, family_id, token_hash, expires_at)
  values (me, family, token_hash, now() + make_interval(days => ttl_days));
end
$$;

-- Spending a refresh token: 'ok' with its user, or why not. A spent or revoked token
-- presented again means it leaked, so its whole family is revoked. The row is locked, so a
-- concurrent refresh with the same token waits and then sees it spent.
create function app.spend_refresh_token(presented_hash text)
  returns table (outcome text, user_id uuid, family_id uuid, email text, full_name text)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  token record;
begin
  select t.id, t.user_id, t.family_id, t.used_at, t.revoked_at, t.expires_at <= now() as expired
  into token
  from app.refresh_tokens t where t.token_hash = presented_hash
  for update of t;
  if not found then
    return query select 'unknown'::text, null::uuid, null::uuid, null::text, null::text;
    return;
  end if;
  if token.used_at is not null or token.revoked_at is not null then
    update app.refresh_tokens t set revoked_at = now()
    where t.family_id = token.family_id and t.revoked_at is null;
    return query select 'reused'::text, null::uuid, null::uuid, null::text, null::text;
    return;
  end if;
  if token.expired then
    return query select 'expired'::text, null::uuid, null::uuid, null::text, null::text;
    return;
  end if;
  update app.refresh_tokens t set used_at = now() where t.id = token.id;
  return query
    select 'ok'::text, u.id, token.family_id, u.email::text, coalesce(p.full_name, '')::text
    from auth.users u left join public.user_profiles p on p.user_id = u.id
    where u.id = token.user_id;
end
$$;

-- The user of a live session (the web page token), without spending its refresh token.
create function app.session_user_of(presented_hash text)
  returns table (user_id uuid, email text)
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return query
    select u.id, u.email::text
    from app.refresh_tokens t join auth.users u on u.id = t.user_id
    where t.token_hash = presented_hash and t.used_at is null and t.revoked_at is null
      and t.expires_at > now();
end
$$;

-- Log-out: the family of the presented token ends.
create function app.revoke_refresh_family(presented_hash text) returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update app.refresh_tokens t set revoked_at = now()
  where t.family_id = (select r.family_id from app.refresh_tokens r
                       where r.token_hash = presented_hash)
    and t.revoked_at is null;
end
$$;

-- /metrics: counts, never rows.
create function app.metrics_counts(top_queues integer)
  returns table (metric text, label text, n bigint)
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return query
    select 'waiting_by_queue'::text, w.queue_id::text, w.n
    from (select t.queue_id, count(*) as n from public.tickets t where t.status = 'waiting'
          group by t.queue_id order by count(*) desc, t.queue_id limit top_queues) w;
  return query
    select 'waiting_total'::text, ''::text, count(*) from public.tickets t
    where t.status = 'waiting';
  if to_regclass('public.procrastinate_jobs') is not null then
    return query execute
      'select ''jobs_by_status''::text, s::text, count(j.id)'
      ' from unnest(enum_range(null::public.procrastinate_job_status)) s'
      ' left join public.procrastinate_jobs j on j.status = s group by s order by s';
  end if;
end
$$;

-- Webhook deliveries of a domain event, recorded in the request's transaction by a caller
-- who has business with the organization; the delivery log itself stays closed to them.
create function app.record_webhook_deliveries(org uuid, event_name text, payload jsonb)
  returns setof uuid
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  if app.called_by_api_role() and not app.caller_relates_to(org) then
    raise exception 'events are recorded only by those who have business with the organization'
      using errcode = 'insufficient_privilege';
  end if;
  return query
    insert into public.webhook_deliveries
      (organization_id, webhook_id, event, payload, next_attempt_at)
    select w.organization_id, w.id, event_name, record_webhook_deliveries.payload, now()
    from public.webhooks w
    where w.organization_id = org and w.is_active and w.events @> array[event_name]
    returning id;
end
$$;

-- A new attempt of a delivery, by an admin of its organization: the attempt waiting for its
-- turn (queueing lock 'webhook:<id>', see webhooks.delivery.job_lock) goes, the row reopens.
create function app.reopen_webhook_delivery(delivery uuid) returns void
  language plpgsql volatile security definer
  -- procrastinate's functions name their tables unqualified.
  set search_path = pg_catalog, public, pg_temp
  as $$
declare
  org uuid := (select d.organization_id from public.webhook_deliveries d where d.id = delivery);
begin
  if app.called_by_api_role() and not coalesce(org = any (app.admin_org_ids()), false) then
    raise exception 'only the organization''s admins redeliver its webhooks'
      using errcode = 'insufficient_privilege';
  end if;
  perform public.procrastinate_cancel_job_v1(j.id, false, true)
  from public.procrastinate_jobs j
  where j.status = 'todo' and j.queueing_lock = 'webhook:' || delivery::text;
  update public.webhook_deliveries d set status = 'pending', next_attempt_at = now()
  where d.id = delivery and d.organization_id = org;
end
$$;

revoke execute on function app.reopen_webhook_delivery(uuid) from public;
grant execute on function app.reopen_webhook_delivery(uuid) to authenticated, service_role;
revoke execute on function app.sign_in_candidate(text), app.sign_up(text, text, text, text),
  app.record_sign_in(text), app.issue_refresh_token(uuid, text, integer),
  app.spend_refresh_token(text), app.session_user_of(text), app.revoke_refresh_family(text),
  app.metrics_counts(integer), app.record_webhook_deliveries(uuid, text, jsonb) from public;
grant execute on function app.sign_in_candidate(text), app.sign_up(text, text, text, text),
  app.spend_refresh_token(text), app.session_user_of(text), app.revoke_refresh_family(text),
  app.metrics_counts(integer) to anon, service_role;
grant execute on function app.record_sign_in(text), app.issue_refresh_token(uuid, text, integer)
  to authenticated, service_role;
grant execute on function app.record_webhook_deliveries(uuid, text, jsonb)
  to anon, authenticated, service_role;

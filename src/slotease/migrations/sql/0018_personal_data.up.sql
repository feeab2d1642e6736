-- Wait briefly for locks rather than queue every other statement behind this migration.
set local lock_timeout = '5s';

-- Personal data: consents with their history, erasure of a person everywhere their data was
-- copied, retention of free text, and the audit trail as the organization's admins read it.

-- ---------------------------------------------------------------------------------------
-- Consents: one row per change, never updated or deleted (no such grant or policy), so the
-- history is the proof of what the person agreed to, when, and through what.
-- ---------------------------------------------------------------------------------------
create table public.consent_events (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  purpose text not null check (purpose in ('marketing', 'sms', 'email', 'push')),
  granted boolean not null,
  source text not null check (source ~ '^[a-z][a-z0-9_.-]{0,31}$'),
  at timestamptz not null default now()
);
-- The current consent of a purpose is its latest event.
create index consent_events_user_idx on public.consent_events (user_id, purpose, at desc, id);

alter table public.consent_events enable row level security;
alter table public.consent_events force row level security;
create policy consent_events_select_authenticated on public.consent_events
  for select to authenticated using (user_id = (select auth.uid()));
create policy consent_events_insert_authenticated on public.consent_events
  for insert to authenticated with check (user_id = (select auth.uid()));
grant select, insert on public.consent_events to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- The audit log stays append-only, except for the personal fields that erasure and
-- retention blank: those rewrites come only from the owner's functions below, which set
-- `slotease.audit_rewrite` for their transaction (the worker, with all privileges on the
-- table, still cannot update it itself).
-- ---------------------------------------------------------------------------------------
create or replace function app.reject_audit_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if tg_op = 'UPDATE' and current_setting('slotease.audit_rewrite', true) = 'on'
     and current_user = (select pg_catalog.pg_get_userbyid(c.relowner)
                         from pg_catalog.pg_class c where c.oid = tg_relid) then
    return new;
  end if;
  raise exception 'audit_log is append-only' using errcode = '42501';
end
$$;

-- A JSON document with every string that contains one of `markers` (case-insensitive)
-- turned to null; keys and every other value stay, so counts and ids still add up.
create function app.erase_from_jsonb(doc jsonb, markers text[]) returns jsonb
  language sql immutable
  set search_path = ''
  as $$
    select case jsonb_typeof(doc)
      when 'object' then (
        select coalesce(jsonb_object_agg(e.key, app.erase_from_jsonb(e.value, markers)), '{}')
        from jsonb_each(doc) e)
      when 'array' then (
        select coalesce(jsonb_agg(app.erase_from_jsonb(e.value, markers) order by e.n), '[]')
        from jsonb_array_elements(doc) with ordinality e (value, n))
      when 'string' then case
        when exists (select 1 from unnest(markers) m
                     where pg_catalog.strpos(lower(doc #>> '{}'), lower(m)) > 0)
        then 'null'::jsonb else doc end
      else doc
    end
  $$;

-- ---------------------------------------------------------------------------------------
-- Erasure of one person (the worker's job after `DELETE /v1/me`, or `slotease gdpr erase`).
-- Their upcoming appointments, tickets and waitlist places were given up through the normal
-- lifecycle first (so places freed up and people were told); this removes what remains,
-- in one transaction, and may run again (every step finds nothing left to do).
-- Rows stay where figures need them (appointments, tickets, feedback ratings, events): they
-- keep their ids and counts and lose the words. Documents that copied the person (audit
-- rows, webhook payloads, stored API answers, job arguments) lose every string naming them.
-- ---------------------------------------------------------------------------------------
create function app.erase_user(person uuid) returns jsonb
  language plpgsql volatile security definer
  -- procrastinate's functions name their tables unqualified.
  set search_path = pg_catalog, public, pg_temp
  as $$
declare
  person_text text := person::text;
  address text;
  markers text[];
  -- Every id whose rows are about the person: documents that name one are theirs too.
  subjects text[];
  counts jsonb := '{}';
  n integer;
begin
  select u.email into address from auth.users u where u.id = person;
  if not found then
    return null;
  end if;
  -- What identifies the person in free text. Their own notes and comments count too: they
  -- are searched only in documents about the person (or, for an address, anywhere). A sealed
  -- value (0019: bytea) is looked for as the audit log copies it, `\x<hex>`; `to_jsonb(v) #>>
  -- '{}'` is that copy's text (and the value itself while it is still text).
  select array_agg(distinct m) filter (where length(btrim(m)) >= 2) into markers
  from unnest(array[address, (select p.full_name from public.user_profiles p where p.user_id = person),
                    (select to_jsonb(p.phone) #>> '{}' from public.user_profiles p
                     where p.user_id = person),
                    (select u.phone from auth.users u where u.id = person)]
              || array(select to_jsonb(a.notes) #>> '{}' from public.appointments a
                       where a.customer_id = person and a.notes is not null)
              || array(select to_jsonb(f.comment) #>> '{}' from public.feedback f
                       where f.customer_id = person and f.comment is not null)) m;
  markers := coalesce(markers, '{}');
  subjects := array[person_text]
    || array(select a.id::text from public.appointments a where a.customer_id = person)
    || array(select t.id::text from public.tickets t where t.user_id = person)
    || array(select w.id::text from public.waitlist_entries w where w.user_id = person)
    || array(select f.id::text from public.feedback f where f.customer_id = person)
    || array(select x.id::text from public.notifications x where x.user_id = person);

  perform set_config('slotease.audit_rewrite', 'on', true);

  -- Access: no session, no password, no feed link, no device to push to.
  delete from app.refresh_tokens t where t.user_id = person;
  delete from public.calendar_feed_tokens c where c.user_id = person;
  delete from public.notification_preferences f where f.user_id = person;
  delete from public.organization_members m where m.user_id = person;
  delete from public.idempotency_keys k where k.principal = person_text;

  -- Work still waiting for the person: messages and reminders about them go unsent.
  perform procrastinate_cancel_job_v1(j.id, false, true)
  from procrastinate_jobs j
  where j.status = 'todo' and j.task_name <> 'gdpr.erase'
    and (j.args ->> 'subject_id' = any (subjects) or j.args ->> 'appointment_id' = any (subjects)
         or j.args ->> 'user_id' = person_text
         or exists (select 1 from jsonb_array_elements_text(
                      case when jsonb_typeof(j.args -> 'ids') = 'array' then j.args -> 'ids'
                      else '[]' end) i where i = any (subjects)));

  -- Free text about them; the rows and their figures stay.
  update public.appointments a set notes = null where a.customer_id = person and a.notes is not null;
  get diagnostics n = row_count;
  counts := counts || jsonb_build_object('appointment_notes', n);
  update public.feedback f set comment = null where f.customer_id = person and f.comment is not null;
  get diagnostics n = row_count;
  counts := counts || jsonb_build_object('feedback_comments', n);
  update public.notifications x
  set subject = null, body = null, data = '{}', last_error = null,
      status = case when x.status = 'queued' then 'skipped' else x.status end
  where x.user_id = person;
  get diagnostics n = row_count;
  counts := counts || jsonb_build_object('notifications', n);
  delete from public.invitations i where lower(i.email) = lower(address);

  -- Reports are rebuilt on request; the ones that may quote the person's comments go.
  update public.analytics_reports r
  set content = null, content_type = null, status = 'failed',
      error = 'Withdrawn after a personal-data erasure; request the report again.'
  where r.content is not null and r.kind = 'feedback'
    and r.organization_id in (select f.organization_id from public.feedback f
                              where f.customer_id = person);
  get diagnostics n = row_count;
  counts := counts || jsonb_build_object('reports', n);

  -- Copies in documents: those about the person lose every string naming them; an address
  -- or a phone number is looked for in every document.
  -- An appointment's notes travel sealed on their own (kit.crypto.seal_in): no marker finds
  -- them, so a copy of the person's appointment loses its notes outright.
  update public.webhook_deliveries d
  set payload = app.erase_from_jsonb(d.payload, markers)
        || case when d.payload ? 'notes' and d.payload ->> 'id' = any (subjects)
           then '{"notes": null}'::jsonb else '{}'::jsonb end,
    last_error = null
  where exists (select 1 from unnest(subjects || array[address]) s
                where strpos(lower(d.payload::text), lower(s)) > 0);
  get diagnostics n = row_count;
  counts := counts || jsonb_build_object('webhook_deliveries', n);
  update public.idempotency_keys k
  set response_body = app.erase_from_jsonb(k.response_body, markers)
        || case when k.response_body ? 'notes' and k.response_body ->> 'id' = any (subjects)
           then '{"notes": null}'::jsonb else '{}'::jsonb end
  where exists (select 1 from unnest(subjects || array[address]) s
                where strpos(lower(k.response_body::text), lower(s)) > 0);
  update public.analytics_events e
  set user_id = case when e.user_id = person then null else e.user_id end,
      properties = app.erase_from_jsonb(e.properties, markers)
  where e.user_id = person
     or exists (select 1 from unnest(subjects || array[address]) s
                where strpos(lower(e.properties::text), lower(s)) > 0);
  update procrastinate_jobs j set args = app.erase_from_jsonb(j.args, markers)
  where j.task_name <> 'gdpr.erase'
    and exists (select 1 from unnest(subjects || array[address]) s
                where strpos(lower(j.args::text), lower(s)) > 0);

  -- The account itself: an address that names nobody, and no profile beyond its id.
  update public.user_profiles p set full_name = '', phone = null where p.user_id = person;
  update auth.users u
  set email = 'erased-' || person_text || '@erased.invalid', encrypted_password = null,
      phone = null, email_confirmed_at = null, raw_user_meta_data = '{}',
      raw_app_meta_data = jsonb_build_object('erased_at', now()), updated_at = now()
  where u.id = person;

  -- Last, so the audit rows the steps above just wrote are covered too.
  update public.audit_log l
  set old_row = app.erase_from_jsonb(l.old_row, markers),
      new_row = app.erase_from_jsonb(l.new_row, markers)
  where exists (select 1 from unnest(subjects || array[address]) s
                where strpos(lower(coalesce(l.old_row::text, '') || coalesce(l.new_row::text, '')),
                             lower(s)) > 0);
  get diagnostics n = row_count;
  counts := counts || jsonb_build_object('audit_rows', n);

  insert into public.audit_log (table_name, operation, row_id, actor_id, actor_role, new_row)
  values ('users', 'UPDATE', person_text, auth.uid(), coalesce(auth.role(), session_user),
          jsonb_build_object('erased', true));
  return counts;
end
$$;
revoke execute on function app.erase_user(uuid), app.erase_from_jsonb(jsonb, text[]) from public;
grant execute on function app.erase_user(uuid) to service_role;

-- ---------------------------------------------------------------------------------------
-- Retention of free text (the daily maintenance): webhook payloads, report contents,
-- notification bodies and feedback comments older than their cut-off lose their words, and
-- so do the audit rows that copied them. Figures and statuses stay.
-- ---------------------------------------------------------------------------------------
create function app.apply_text_retention(
  webhook_payloads_before timestamptz, report_contents_before timestamptz,
  notification_bodies_before timestamptz, feedback_comments_before timestamptz
) returns jsonb
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  counts jsonb := '{}';
  n integer;
begin
  perform set_config('slotease.audit_rewrite', 'on', true);
  update public.webhook_deliveries d set payload = '{}'
  where d.created_at < webhook_payloads_before and d.status <> 'pending' and d.payload <> '{}';
  get diagnostics n = row_count;
  counts := counts || jsonb_build_object('webhook_payloads', n);

  update public.analytics_reports r
  set content = null, content_type = null, status = 'failed',
      error = 'The report passed its retention period; request it again.'
  where r.finished_at < report_contents_before and r.content is not null;
  get diagnostics n = row_count;
  counts := counts || jsonb_build_object('report_contents', n);

  update public.notifications x set subject = null, body = null
  where x.created_at < notification_bodies_before and x.status <> 'queued'
    and (x.subject is not null or x.body is not null);
  get diagnostics n = row_count;
  counts := counts || jsonb_build_object('notification_bodies', n);
  update public.audit_log l
  set new_row = l.new_row || '{"subject": null, "body": null}'
  where l.table_name = 'notifications' and l.at < notification_bodies_before
    and (l.new_row ->> 'subject' is not null or l.new_row ->> 'body' is not null);

  update public.feedback f set comment = null
  where f.created_at < feedback_comments_before and f.comment is not null;
  get diagnostics n = row_count;
  counts := counts || jsonb_build_object('feedback_comments', n);
  -- The update just above wrote audit rows with the old comment as well.
  update public.audit_log l
  set old_row = case when l.old_row ? 'comment' then l.old_row || '{"comment": null}' end,
      new_row = case when l.new_row ? 'comment' then l.new_row || '{"comment": null}' end
  where l.table_name = 'feedback'
    and (l.old_row ->> 'comment' is not null or l.new_row ->> 'comment' is not null)
    and (coalesce(l.new_row, l.old_row) ->> 'created_at')::timestamptz < feedback_comments_before;
  return counts;
end
$$;
revoke execute on function app.apply_text_retention(timestamptz, timestamptz, timestamptz, timestamptz)
  from public;
grant execute on function app.apply_text_retention(timestamptz, timestamptz, timestamptz, timestamptz)
  to service_role;

-- ---------------------------------------------------------------------------------------
-- The caller's own account, for the request path: the password hash to check before an
-- erasure, closing the account (sessions and password go at once; the worker erases the
-- rest), and the records about them that their role cannot read (sessions without their
-- hashes, the audit trail, analytics events).
-- ---------------------------------------------------------------------------------------
create function app.close_my_account() returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  delete from app.refresh_tokens t where t.user_id = auth.uid();
  update auth.users u set encrypted_password = null, updated_at = now() where u.id = auth.uid();
end
$$;

-- The same for the operator (service_role names the person); a request gets only its own.
create function app.personal_records_of(person uuid) returns jsonb
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  if app.called_by_api_role() and person is distinct from auth.uid() then
    raise exception 'a request exports only its own records' using errcode = 'insufficient_privilege';
  end if;
  return jsonb_build_object(
    'sessions', coalesce((
      select jsonb_agg(jsonb_build_object(
        'id', t.id, 'family_id', t.family_id, 'created_at', t.created_at,
        'expires_at', t.expires_at, 'used_at', t.used_at, 'revoked_at', t.revoked_at)
        order by t.created_at, t.id)
      from app.refresh_tokens t where t.user_id = person), '[]'),
    'audit_entries', coalesce((
      select jsonb_agg(jsonb_build_object(
        'at', l.at, 'table', l.table_name, 'operation', l.operation, 'row_id', l.row_id,
        'actor_id', l.actor_id, 'old_row', app.redact_secrets(l.old_row),
        'new_row', app.redact_secrets(l.new_row)) order by l.at, l.id)
      from public.audit_log l
      where l.actor_id = person or l.row_id = person::text
         or coalesce(l.new_row, l.old_row) ->> 'customer_id' = person::text
         or coalesce(l.new_row, l.old_row) ->> 'user_id' = person::text), '[]'),
    'analytics_events', coalesce((
      select jsonb_agg(jsonb_build_object(
        'at', e.occurred_at, 'organization_id', e.organization_id, 'event_type', e.event_type,
        'properties', e.properties) order by e.occurred_at, e.id)
      from public.analytics_events e where e.user_id = person), '[]'),
    'account', (
      select jsonb_build_object('email', u.email, 'created_at', u.created_at,
        'last_sign_in_at', u.last_sign_in_at, 'email_confirmed_at', u.email_confirmed_at)
      from auth.users u where u.id = person));
end
$$;

revoke execute on function app.close_my_account(), app.personal_records_of(uuid) from public;
grant execute on function app.close_my_account() to authenticated;
grant execute on function app.personal_records_of(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Enqueueing from a request: a person may ask for their own erasure; account mails are
-- checked as in 0017, everything else by the checks of 0011 as before.
-- ---------------------------------------------------------------------------------------
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
  elsif task = 'gdpr.erase' then
    if app.called_by_api_role() and (args ->> 'user_id') is distinct from auth.uid()::text then
      raise exception 'a person may only ask for their own erasure'
        using errcode = 'insufficient_privilege';
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

-- The admins' audit page redacts again on the way out (rows written before 0012 were not).
grant execute on function app.redact_secrets(jsonb) to authenticated;

set local lock_timeout = '5s';

-- Supabase mode: on a Supabase project, Supabase Auth owns `auth` (its tables belong to
-- supabase_auth_admin) and SlotEase only reads it. Detected as an auth.users that belongs to
-- another role than SlotEase's own schema; the API asks the same function at start
-- (auth.service.accounts_mode) unless SLOTEASE_AUTH says which.
create or replace function app.accounts_in_supabase() returns boolean
  language sql stable
  set search_path = ''
  as $$
    select coalesce((
      select c.relowner <> n.nspowner
      from pg_catalog.pg_class c, pg_catalog.pg_namespace n
      where c.oid = pg_catalog.to_regclass('auth.users') and n.nspname = 'app'), false)
  $$;
grant execute on function app.accounts_in_supabase() to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Profiles from Supabase Auth (the `handle_new_user` pattern of Supabase's documentation):
-- a user Supabase Auth creates gets their profile, with the name and phone its sign-up gave
-- in raw_user_meta_data (`full_name`, else `name`; `phone`), and a later change of that
-- metadata updates them; a field the metadata does not carry keeps what the profile holds.
-- It runs inside Supabase Auth's own statements, so it must not fail them: a name is cut to
-- the profile's 200 characters and a phone the profile would refuse is left out. The phone
-- is stored as a not-yet-sealed value (`v0|`, kit.crypto), which reads as it is and which
-- `slotease keys rotate` seals, since the database holds no encryption key.
-- ---------------------------------------------------------------------------------------
create or replace function app.profile_from_metadata(person uuid, meta jsonb) returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  given_name text := left(btrim(coalesce(nullif(btrim(meta ->> 'full_name'), ''),
                                         nullif(btrim(meta ->> 'name'), ''))), 200);
  given_phone text := btrim(meta ->> 'phone');
begin
  if given_phone !~ '^\+?[0-9 ()-]{5,32}$' then
    given_phone := null;
  end if;
  insert into public.user_profiles as p (user_id, full_name, phone)
  values (person, coalesce(given_name, ''), 'v0|'::bytea || convert_to(given_phone, 'UTF8'))
  on conflict (user_id) do update
  set full_name = coalesce(given_name, p.full_name),
      phone = coalesce(excluded.phone, p.phone),
      updated_at = now()
  where (given_name is not null and given_name <> p.full_name) or excluded.phone is not null;
end
$$;
revoke execute on function app.profile_from_metadata(uuid, jsonb) from public;

create or replace function app.profile_from_auth_user() returns trigger
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  perform app.profile_from_metadata(new.id, new.raw_user_meta_data);
  return new;
end
$$;
revoke execute on function app.profile_from_auth_user() from public;

do $$
begin
  if app.accounts_in_supabase() then
    create trigger slotease_user_profile after insert or update of raw_user_meta_data
      on auth.users for each row execute function app.profile_from_auth_user();
    -- The users Supabase Auth had before SlotEase came get the profile the trigger makes.
    perform app.profile_from_metadata(u.id, u.raw_user_meta_data) from auth.users u;
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Erasure (0018) and closing one's account, minus the writes to auth.users where Supabase
-- Auth owns them: it erases the account itself (DELETE /auth/v1/admin/users/<id>).
-- Elsewhere both do exactly what 0018's did.
-- ---------------------------------------------------------------------------------------
create or replace function app.erase_user(person uuid) returns jsonb
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
  -- Where Supabase Auth owns the account, the API removes it through Supabase Auth's admin
  -- API once this has run (privacy.service.erase_account): SlotEase never writes auth.*.
  if not app.accounts_in_supabase() then
    update auth.users u
    set email = 'erased-' || person_text || '@erased.invalid', encrypted_password = null,
        phone = null, email_confirmed_at = null, raw_user_meta_data = '{}',
        raw_app_meta_data = jsonb_build_object('erased_at', now()), updated_at = now()
    where u.id = person;
  end if;

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

create or replace function app.close_my_account() returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  delete from app.refresh_tokens t where t.user_id = auth.uid();
  if not app.accounts_in_supabase() then
    update auth.users u set encrypted_password = null, updated_at = now() where u.id = auth.uid();
  end if;
end
$$;

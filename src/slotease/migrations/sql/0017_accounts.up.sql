-- Wait briefly for locks rather than queue every other statement behind this migration.
set local lock_timeout = '5s';

-- Accounts: password change and recovery, email verification, TOTP multi-factor sign-in,
-- organizations that require it of their staff, and authentication events in the audit log.

-- ---------------------------------------------------------------------------------------
-- Single-use tokens: a recovery link, a verification link, or the step between a verified
-- password and its second factor. Only the token's hash is kept; the mailed ones travel in
-- their job's arguments until the email leaves, as invitations do.
-- ---------------------------------------------------------------------------------------
create table app.account_tokens (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  purpose text not null check (purpose in ('reset', 'verify', 'mfa')),
  token_hash text not null unique,
  expires_at timestamptz not null,
  used_at timestamptz,
  -- Wrong codes presented with an MFA step token: it dies after a few, so that the six
  -- digits cannot be guessed through one token.
  failed_attempts integer not null default 0,
  created_at timestamptz not null default now()
);
create index account_tokens_user_idx on app.account_tokens (user_id, purpose);
create index account_tokens_expires_idx on app.account_tokens (expires_at);

-- A user's TOTP factor (RFC 6238). `secret` is the one column holding it, read and written
-- only through auth.repository's MFA secret pair. `last_used_step` is the time step of the
-- latest accepted code: a code is accepted once, and never one of an earlier step.
create table app.mfa_factors (
  user_id uuid primary key references auth.users (id) on delete cascade,
  -- Sealed by kit.crypto (AES-256-GCM) before it reaches the database.
  secret bytea not null,
  confirmed_at timestamptz,
  last_used_step bigint,
  created_at timestamptz not null default now()
);

create table app.mfa_recovery_codes (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  code_hash text not null,
  used_at timestamptz,
  unique (user_id, code_hash)
);

-- Reached only through the functions below (and by the worker as service_role).
alter table app.account_tokens enable row level security;
alter table app.account_tokens force row level security;
alter table app.mfa_factors enable row level security;
alter table app.mfa_factors force row level security;
alter table app.mfa_recovery_codes enable row level security;
alter table app.mfa_recovery_codes force row level security;
grant select, insert, update, delete on app.account_tokens, app.mfa_factors,
  app.mfa_recovery_codes to service_role;
create policy account_tokens_service on app.account_tokens for all to service_role
  using (true) with check (true);
create policy mfa_factors_service on app.mfa_factors for all to service_role
  using (true) with check (true);
create policy mfa_recovery_codes_service on app.mfa_recovery_codes for all to service_role
  using (true) with check (true);

-- The one live token of `purpose` for `subject` (any earlier one dies), and spending a live
-- token: its account, or null for one that is unknown, used, replaced or expired.
create function app.replace_account_token(subject uuid, purpose text, token_hash text,
                                          ttl interval) returns uuid
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  created uuid;
begin
  update app.account_tokens t set used_at = now()
  where t.user_id = subject and t.purpose = replace_account_token.purpose and t.used_at is null;
  insert into app.account_tokens (user_id, purpose, token_hash, expires_at)
  values (subject, replace_account_token.purpose, token_hash, now() + ttl)
  returning id into created;
  return created;
end
$$;

create function app.spend_account_token(presented_hash text, purpose text) returns uuid
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  subject uuid;
begin
  update app.account_tokens t set used_at = now()
  where t.token_hash = presented_hash and t.purpose = spend_account_token.purpose
    and t.used_at is null and t.expires_at > now()
  returning t.user_id into subject;
  return subject;
end
$$;
revoke execute on function app.replace_account_token(uuid, text, text, interval),
  app.spend_account_token(text, text) from public;

-- ---------------------------------------------------------------------------------------
-- Authentication events in the audit log, as rows of the pseudo-table `auth_events`: the
-- event's name and what identifies the attempt, never a password, token, code or secret.
-- ---------------------------------------------------------------------------------------
create function app.record_auth_event(subject uuid, event text, details jsonb) returns void
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  insert into public.audit_log (table_name, operation, row_id, actor_id, actor_role, new_row)
  values ('auth_events', 'INSERT', subject::text, subject,
          coalesce(auth.role(), session_user),
          jsonb_build_object('event', event) || app.redact_secrets(coalesce(details, '{}')));
end
$$;
revoke execute on function app.record_auth_event(uuid, text, jsonb) from public;

-- A failed or refused sign-in, by address: the account's event when the address has one.
-- Nothing is recorded of an unknown address, which might be a password typed in the wrong box.
create function app.record_sign_in_refusal(address text, event text, client_address text)
  returns void
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  subject uuid := (select u.id from auth.users u where lower(u.email) = lower(address));
begin
  if event not in ('sign_in_failed', 'sign_in_locked') then
    raise exception 'not a sign-in refusal' using errcode = 'check_violation';
  end if;
  if subject is not null then
    perform app.record_auth_event(subject, event, jsonb_build_object('address', client_address));
  end if;
end
$$;

-- The signed-in user's own sign-in stamp (and a stronger hash when the parameters changed),
-- now with its audit event; `factor` says how the sign-in was completed.
drop function app.record_sign_in(text);
create function app.record_sign_in(new_password_hash text, factor text, client_address text)
  returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update auth.users u set last_sign_in_at = now(), updated_at = now(),
    encrypted_password = coalesce(new_password_hash, u.encrypted_password)
  where u.id = auth.uid();
  if found then
    perform app.record_auth_event(auth.uid(), 'sign_in',
      jsonb_build_object('factor', factor, 'address', client_address));
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Sessions. An access token names its refresh-token family (`sid`); it works while that
-- family does, so revoking a family ends its access tokens too.
-- ---------------------------------------------------------------------------------------
create function app.session_is_live(family uuid) returns boolean
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return exists (select 1 from app.refresh_tokens t
                 where t.family_id = family and t.user_id = auth.uid() and t.revoked_at is null);
end
$$;

drop function app.session_user_of(text);
-- The user and family of a live session (the web page token, which names the family as its
-- session), without spending its refresh token.
create function app.session_user_of(presented_hash text)
  returns table (user_id uuid, email text, family_id uuid)
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return query
    select u.id, u.email::text, t.family_id
    from app.refresh_tokens t join auth.users u on u.id = t.user_id
    where t.token_hash = presented_hash and t.used_at is null and t.revoked_at is null
      and t.expires_at > now();
end
$$;
revoke execute on function app.session_user_of(text) from public;
grant execute on function app.session_user_of(text) to anon, service_role;

-- Whether the caller's address is verified (read from auth.users, not the token).
create function app.my_account()
  returns table (email text, email_verified boolean, mfa_enabled boolean)
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return query
    select u.email::text, u.email_confirmed_at is not null,
           exists (select 1 from app.mfa_factors f
                   where f.user_id = u.id and f.confirmed_at is not null)
    from auth.users u where u.id = auth.uid();
end
$$;

-- The hash the caller's current password is checked against.
create function app.my_password_hash() returns text
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return (select u.encrypted_password::text from auth.users u where u.id = auth.uid());
end
$$;

-- A new password for the caller; every session but `keep_family` ends.
create function app.change_password(password_hash text, keep_family uuid) returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  me uuid := auth.uid();
begin
  update auth.users u set encrypted_password = password_hash, updated_at = now()
  where u.id = me;
  if not found then
    raise exception 'no signed-in user' using errcode = 'insufficient_privilege';
  end if;
  update app.refresh_tokens t set revoked_at = now()
  where t.user_id = me and t.revoked_at is null and t.family_id is distinct from keep_family;
  perform app.record_auth_event(me, 'password_changed', '{}');
end
$$;

-- ---------------------------------------------------------------------------------------
-- Recovery. A request for an address with an account makes a reset token (any earlier one
-- dies) and answers its id; for any other address it answers nothing and changes nothing.
-- ---------------------------------------------------------------------------------------
create function app.request_password_reset(address text, token_hash text, ttl interval)
  returns uuid
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  subject uuid := (select u.id from auth.users u where lower(u.email) = lower(address));
begin
  if subject is null then
    return null;
  end if;
  perform app.record_auth_event(subject, 'recovery_requested', '{}');
  return app.replace_account_token(subject, 'reset', token_hash, ttl);
end
$$;

-- Spending a reset token: the new password, and every session of the account ends. Null
-- for a token that is unknown, used or expired.
create function app.reset_password(presented_hash text, password_hash text) returns uuid
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  subject uuid := app.spend_account_token(presented_hash, 'reset');
begin
  if subject is null then
    return null;
  end if;
  update auth.users u set encrypted_password = password_hash, updated_at = now()
  where u.id = subject;
  update app.refresh_tokens t set revoked_at = now()
  where t.user_id = subject and t.revoked_at is null;
  perform app.record_auth_event(subject, 'recovery_used', '{}');
  return subject;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Verification of the caller's address: a token (earlier ones die), none once verified.
-- ---------------------------------------------------------------------------------------
create function app.issue_verification(token_hash text, ttl interval) returns uuid
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  if not exists (select 1 from auth.users u
                 where u.id = auth.uid() and u.email_confirmed_at is null) then
    return null;
  end if;
  return app.replace_account_token(auth.uid(), 'verify', token_hash, ttl);
end
$$;

-- The token is the proof: whoever holds the link verifies the address it was sent to.
create function app.verify_email(presented_hash text) returns boolean
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  subject uuid := app.spend_account_token(presented_hash, 'verify');
begin
  if subject is null then
    return false;
  end if;
  update auth.users u set email_confirmed_at = coalesce(u.email_confirmed_at, now()),
    updated_at = now()
  where u.id = subject;
  perform app.record_auth_event(subject, 'email_verified', '{}');
  return true;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Multi-factor sign-in: the caller's own factor only.
-- ---------------------------------------------------------------------------------------
-- A new, unconfirmed factor with its recovery codes; refused while one is confirmed.
create function app.begin_mfa_enrollment(secret bytea, code_hashes text[]) returns boolean
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  me uuid := auth.uid();
begin
  if me is null or exists (select 1 from app.mfa_factors f
                           where f.user_id = me and f.confirmed_at is not null) then
    return false;
  end if;
  insert into app.mfa_factors as f (user_id, secret) values (me, begin_mfa_enrollment.secret)
  on conflict (user_id) do update
    set secret = excluded.secret, last_used_step = null, created_at = now();
  delete from app.mfa_recovery_codes c where c.user_id = me;
  insert into app.mfa_recovery_codes (user_id, code_hash)
  select me, h from unnest(code_hashes) h;
  return true;
end
$$;

create function app.my_mfa_factor()
  returns table (secret bytea, confirmed boolean)
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return query
    select f.secret, f.confirmed_at is not null from app.mfa_factors f
    where f.user_id = auth.uid();
end
$$;

-- Accepting a TOTP code of time step `step`: once, and only after the latest accepted one.
create function app.use_totp_step(step bigint) returns boolean
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update app.mfa_factors f set last_used_step = step
  where f.user_id = auth.uid() and (f.last_used_step is null or f.last_used_step < step);
  return found;
end
$$;

create function app.use_recovery_code(presented_hash text) returns boolean
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update app.mfa_recovery_codes c set used_at = now()
  where c.user_id = auth.uid() and c.code_hash = presented_hash and c.used_at is null
    and exists (select 1 from app.mfa_factors f
                where f.user_id = c.user_id and f.confirmed_at is not null);
  return found;
end
$$;

create function app.confirm_mfa() returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update app.mfa_factors f set confirmed_at = now()
  where f.user_id = auth.uid() and f.confirmed_at is null;
  if found then
    perform app.record_auth_event(auth.uid(), 'mfa_enabled', '{}');
  end if;
end
$$;

create function app.disable_mfa() returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  delete from app.mfa_recovery_codes c where c.user_id = auth.uid();
  delete from app.mfa_factors f where f.user_id = auth.uid();
  if found then
    perform app.record_auth_event(auth.uid(), 'mfa_disabled', '{}');
  end if;
end
$$;

-- The step between password and code: a token for the caller, who just proved the password
-- (and a stronger hash of it when the parameters changed, as record_sign_in does).
create function app.issue_mfa_challenge(token_hash text, ttl interval, new_password_hash text)
  returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  if auth.uid() is null then
    raise exception 'no signed-in user' using errcode = 'insufficient_privilege';
  end if;
  update auth.users u set encrypted_password = new_password_hash, updated_at = now()
  where u.id = auth.uid() and new_password_hash is not null;
  insert into app.account_tokens (user_id, purpose, token_hash, expires_at)
  values (auth.uid(), 'mfa', token_hash, now() + ttl);
end
$$;

-- The account a live MFA step token stands for (locked until the transaction ends, so that
-- two codes presented at once are judged one after the other).
create function app.mfa_challenge_user(presented_hash text, max_failures integer)
  returns table (user_id uuid, email text, full_name text)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  return query
    select u.id, u.email::text, coalesce(p.full_name, '')::text
    from app.account_tokens t
    join auth.users u on u.id = t.user_id
    left join public.user_profiles p on p.user_id = u.id
    where t.token_hash = presented_hash and t.purpose = 'mfa' and t.used_at is null
      and t.expires_at > now() and t.failed_attempts < max_failures
    for update of t;
end
$$;

-- The outcome of a code presented with the caller's MFA step token.
create function app.settle_mfa_challenge(presented_hash text, succeeded boolean) returns void
  language plpgsql volatile security definer
  set search_path = ''
  as $$
begin
  update app.account_tokens t
  set used_at = case when succeeded then now() end,
      failed_attempts = t.failed_attempts + case when succeeded then 0 else 1 end
  where t.token_hash = presented_hash and t.purpose = 'mfa' and t.user_id = auth.uid();
  if not succeeded then
    perform app.record_auth_event(auth.uid(), 'mfa_failed', '{}');
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Organizations with settings.require_mfa: their staff and admins without a confirmed
-- factor do not act as staff or admin there. The policy helpers leave those organizations
-- out, so every policy and check built on them follows; `mfa_blocked_org_ids` names them, so
-- that the API can say why (403) instead of only refusing.
-- ---------------------------------------------------------------------------------------
create function app.mfa_blocked_org_ids() returns uuid[]
  language plpgsql stable security definer
  set search_path = ''
  as $$
declare
  ids uuid[];
begin
  if nullif(current_setting('slotease.api_key_hash', true), '') is not null
     or exists (select 1 from app.mfa_factors f
                where f.user_id = auth.uid() and f.confirmed_at is not null) then
    return '{}';
  end if;
  select coalesce(array_agg(m.organization_id), '{}') into ids
  from public.organization_members m
  join public.organizations o on o.id = m.organization_id
  where m.user_id = auth.uid() and o.settings -> 'require_mfa' = 'true'::jsonb;
  return ids;
end
$$;

create or replace function app.member_org_ids() returns uuid[]
  language plpgsql stable security definer
  set search_path = ''
  as $$
declare
  ids uuid[];
  blocked uuid[];
begin
  if nullif(current_setting('slotease.api_key_hash', true), '') is not null then
    select coalesce(array_agg(g.organization_id), '{}') into ids from app.api_key_grant() g;
    return ids;
  end if;
  blocked := app.mfa_blocked_org_ids();
  select coalesce(array_agg(m.organization_id), '{}') into ids
  from public.organization_members m
  where m.user_id = auth.uid() and m.organization_id <> all (blocked);
  return ids;
end
$$;

create or replace function app.admin_org_ids() returns uuid[]
  language plpgsql stable security definer
  set search_path = ''
  as $$
declare
  ids uuid[];
  blocked uuid[];
begin
  if nullif(current_setting('slotease.api_key_hash', true), '') is not null then
    select coalesce(array_agg(g.organization_id), '{}') into ids
    from app.api_key_grant() g where g.role = 'admin';
    return ids;
  end if;
  blocked := app.mfa_blocked_org_ids();
  select coalesce(array_agg(m.organization_id), '{}') into ids
  from public.organization_members m
  where m.user_id = auth.uid() and m.role = 'admin' and m.organization_id <> all (blocked);
  return ids;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Account emails enqueued by the request path: each about a token this very transaction
-- made. Everything else goes through the checks of 0011 as before.
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
  else
    job_id := app.enqueue_job_checked(queue, task, args, scheduled_at, lock, queueing_lock);
  end if;
  -- Still invisible to the workers: the job is theirs only once this transaction commits.
  update public.procrastinate_jobs j set priority = enqueue_job.priority where j.id = job_id;
  return job_id;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Who may call what.
-- ---------------------------------------------------------------------------------------
revoke execute on function app.record_sign_in_refusal(text, text, text),
  app.record_sign_in(text, text, text), app.session_is_live(uuid), app.my_account(),
  app.my_password_hash(), app.change_password(text, uuid),
  app.request_password_reset(text, text, interval), app.reset_password(text, text),
  app.issue_verification(text, interval), app.verify_email(text),
  app.begin_mfa_enrollment(bytea, text[]), app.my_mfa_factor(), app.use_totp_step(bigint),
  app.use_recovery_code(text), app.confirm_mfa(), app.disable_mfa(),
  app.issue_mfa_challenge(text, interval, text), app.mfa_challenge_user(text, integer),
  app.settle_mfa_challenge(text, boolean), app.mfa_blocked_org_ids() from public;
-- Before anyone is signed in.
grant execute on function app.record_sign_in_refusal(text, text, text),
  app.request_password_reset(text, text, interval), app.reset_password(text, text),
  app.verify_email(text), app.mfa_challenge_user(text, integer) to anon, service_role;
-- Acting on the signed-in caller's own account.
grant execute on function app.record_sign_in(text, text, text), app.session_is_live(uuid),
  app.my_account(), app.my_password_hash(), app.change_password(text, uuid),
  app.issue_verification(text, interval), app.verify_email(text),
  app.begin_mfa_enrollment(bytea, text[]), app.my_mfa_factor(), app.use_totp_step(bigint),
  app.use_recovery_code(text), app.confirm_mfa(), app.disable_mfa(),
  app.issue_mfa_challenge(text, interval, text), app.settle_mfa_challenge(text, boolean),
  app.mfa_blocked_org_ids() to authenticated, service_role;

-- Undo 0017.
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

create or replace function app.member_org_ids() returns uuid[]
  language plpgsql stable security definer
  set search_path = ''
  as $$
declare
  ids uuid[];
begin
  if nullif(current_setting('slotease.api_key_hash', true), '') is not null then
    select coalesce(array_agg(g.organization_id), '{}') into ids from app.api_key_grant() g;
    return ids;
  end if;
  select coalesce(array_agg(m.organization_id), '{}') into ids
  from public.organization_members m where m.user_id = auth.uid();
  return ids;
end
$$;

create or replace function app.admin_org_ids() returns uuid[]
  language plpgsql stable security definer
  set search_path = ''
  as $$
declare
  ids uuid[];
begin
  if nullif(current_setting('slotease.api_key_hash', true), '') is not null then
    select coalesce(array_agg(g.organization_id), '{}') into ids
    from app.api_key_grant() g where g.role = 'admin';
    return ids;
  end if;
  select coalesce(array_agg(m.organization_id), '{}') into ids
  from public.organization_members m where m.user_id = auth.uid() and m.role = 'admin';
  return ids;
end
$$;

drop function app.mfa_blocked_org_ids();
drop function app.settle_mfa_challenge(text, boolean);
drop function app.mfa_challenge_user(text, integer);
drop function app.issue_mfa_challenge(text, interval, text);
drop function app.disable_mfa();
drop function app.confirm_mfa();
drop function app.use_recovery_code(text);
drop function app.use_totp_step(bigint);
drop function app.my_mfa_factor();
drop function app.begin_mfa_enrollment(bytea, text[]);
drop function app.verify_email(text);
drop function app.issue_verification(text, interval);
drop function app.reset_password(text, text);
drop function app.request_password_reset(text, text, interval);
drop function app.change_password(text, uuid);
drop function app.my_password_hash();
drop function app.my_account();
drop function app.session_is_live(uuid);

drop function app.session_user_of(text);
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
revoke execute on function app.session_user_of(text) from public;
grant execute on function app.session_user_of(text) to anon, service_role;

drop function app.record_sign_in(text, text, text);
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

revoke execute on function app.record_sign_in(text) from public;
grant execute on function app.record_sign_in(text) to authenticated, service_role;

drop function app.record_sign_in_refusal(text, text, text);
drop function app.record_auth_event(uuid, text, jsonb);
drop function app.spend_account_token(text, text);
drop function app.replace_account_token(uuid, text, text, interval);

drop table app.mfa_recovery_codes;
drop table app.mfa_factors;
drop table app.account_tokens;

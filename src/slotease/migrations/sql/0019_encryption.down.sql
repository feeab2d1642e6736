-- Undo 0019. Only values still stored as they were before it (`v0|<plaintext>`) can turn back
-- into text without the key: with any encrypted value left, going below 0019 means restoring
-- a backup taken before it, so this refuses instead of destroying them.
do $$
begin
  if exists (select 1 from public.user_profiles
             where substring(phone from 1 for 3) <> 'v0|'::bytea)
     or exists (select 1 from public.appointments
                where substring(notes from 1 for 3) <> 'v0|'::bytea)
     or exists (select 1 from public.feedback
                where substring(comment from 1 for 3) <> 'v0|'::bytea)
     or exists (select 1 from public.notification_preferences
                where substring(push_token from 1 for 3) <> 'v0|'::bytea)
     or exists (select 1 from public.webhooks
                where substring(secret from 1 for 3) <> 'v0|'::bytea
                   or substring(previous_secret from 1 for 3) <> 'v0|'::bytea)
     or exists (select 1 from app.mfa_factors
                where substring(secret from 1 for 3) <> 'v0|'::bytea) then
    raise exception 'encrypted values remain: restore a backup taken before migration 0019';
  end if;
end
$$;

create or replace function app.touch_updated_at() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  new.updated_at := now();
  return new;
end
$$;

drop function app.rotate_webhook_secret(uuid, bytea, interval);
create function app.rotate_webhook_secret(webhook uuid, new_secret text, overlap interval)
  returns table (id uuid, previous_secret_expires_at timestamptz)
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  return query
    update public.webhooks w
    set previous_secret = w.secret, secret = new_secret,
        previous_secret_expires_at = now() + overlap
    where w.id = webhook and app.is_org_admin(w.organization_id)
    returning w.id, w.previous_secret_expires_at;
end
$$;
revoke execute on function app.rotate_webhook_secret(uuid, text, interval) from public;
grant execute on function app.rotate_webhook_secret(uuid, text, interval) to authenticated;

drop function app.sign_up(text, text, text);
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
revoke execute on function app.sign_up(text, text, text, text) from public;
grant execute on function app.sign_up(text, text, text, text) to anon, service_role;

alter table public.webhooks
  alter column secret type text using convert_from(substring(secret from 4), 'UTF8'),
  alter column previous_secret type text
    using convert_from(substring(previous_secret from 4), 'UTF8');

alter table public.notification_preferences
  drop constraint notification_preferences_push_token_check;
alter table public.notification_preferences
  alter column push_token type text using convert_from(substring(push_token from 4), 'UTF8'),
  add constraint notification_preferences_push_token_check check (length(push_token) <= 4096);

alter table public.feedback drop constraint feedback_comment_check;
alter table public.feedback
  alter column comment type text using convert_from(substring(comment from 4), 'UTF8'),
  add constraint feedback_comment_check check (length(comment) <= 2000);

alter table public.appointments drop constraint appointments_notes_check;
alter table public.appointments
  alter column notes type text using convert_from(substring(notes from 4), 'UTF8'),
  add constraint appointments_notes_check check (length(notes) <= 2000);

alter table public.user_profiles drop constraint user_profiles_phone_check;
alter table public.user_profiles
  alter column phone type text using convert_from(substring(phone from 4), 'UTF8'),
  add constraint user_profiles_phone_check check (phone ~ '^\+?[0-9 ()-]{5,32}$');

drop table app.encryption_keys;

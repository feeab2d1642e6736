-- The sealed columns change type once, which rewrites those tables under an exclusive lock
-- (their checks are re-made with them): plan the upgrade in a quiet hour, docs/operations.md.
-- squawk-ignore-file changing-column-type, ban-drop-constraint, constraint-missing-not-valid
-- Wait briefly for locks rather than queue every other statement behind this migration.
set local lock_timeout = '5s';

-- Encryption at rest (architecture decision 10). Phone numbers, appointment notes, feedback
-- comments, push tokens and webhook secrets hold bytea sealed by the application
-- (slotease.kit.crypto): SQL never sees their plaintext, and has no key to make it.
--
-- What was stored before this migration cannot be encrypted here, so it is kept as
-- `v0|<plaintext>`, which the application reads as it is, until `slotease keys rotate`
-- encrypts it under the newest key.

-- ---------------------------------------------------------------------------------------
-- The keys a database has seen: each seals a known text, so a process started with a wrong
-- key for an id stops at once instead of failing on the first value it reads. A key is
-- retired when a rotation left nothing under it.
-- ---------------------------------------------------------------------------------------
create table app.encryption_keys (
  kid text primary key check (kid ~ '^[A-Za-z0-9_-]{1,32}$'),
  check_value bytea not null,
  created_at timestamptz not null default now(),
  retired_at timestamptz
);
alter table app.encryption_keys enable row level security;
alter table app.encryption_keys force row level security;
-- The check values open only with the key: the API reads them to check its own keyring. Only
-- the worker (service_role, which bypasses RLS) registers and retires keys.
grant select on app.encryption_keys to anon, authenticated;
grant select, insert, update on app.encryption_keys to service_role;
create policy encryption_keys_select_api on app.encryption_keys for select
  to anon, authenticated using (true);

-- ---------------------------------------------------------------------------------------
-- The columns. The length rules stay in the request schemas; these bounds only keep a
-- runaway value out (ciphertext adds a header, a nonce and a tag to UTF-8 of up to 4 bytes a
-- character).
-- ---------------------------------------------------------------------------------------
alter table public.user_profiles drop constraint user_profiles_phone_check;
alter table public.user_profiles
  alter column phone type bytea using 'v0|'::bytea || convert_to(phone, 'UTF8'),
  add constraint user_profiles_phone_check check (octet_length(phone) <= 256);

alter table public.appointments drop constraint appointments_notes_check;
alter table public.appointments
  alter column notes type bytea using 'v0|'::bytea || convert_to(notes, 'UTF8'),
  add constraint appointments_notes_check check (octet_length(notes) <= 8192);

alter table public.feedback drop constraint feedback_comment_check;
alter table public.feedback
  alter column comment type bytea using 'v0|'::bytea || convert_to(comment, 'UTF8'),
  add constraint feedback_comment_check check (octet_length(comment) <= 8192);

alter table public.notification_preferences
  drop constraint notification_preferences_push_token_check;
alter table public.notification_preferences
  alter column push_token type bytea using 'v0|'::bytea || convert_to(push_token, 'UTF8'),
  add constraint notification_preferences_push_token_check
    check (octet_length(push_token) <= 16448);

alter table public.webhooks
  alter column secret type bytea using 'v0|'::bytea || convert_to(secret, 'UTF8'),
  alter column previous_secret type bytea
    using 'v0|'::bytea || convert_to(previous_secret, 'UTF8');

-- ---------------------------------------------------------------------------------------
-- Sign-up no longer writes the phone number: it is sealed to the new user's id, which only
-- exists once this function returns, so the application writes it as that user.
-- ---------------------------------------------------------------------------------------
drop function app.sign_up(text, text, text, text);
create function app.sign_up(address text, password_hash text, full_name text)
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
  insert into public.user_profiles (user_id, full_name) values (created, sign_up.full_name);
  return query select created, created_email;
end
$$;
revoke execute on function app.sign_up(text, text, text) from public;
grant execute on function app.sign_up(text, text, text) to anon, service_role;

-- The new secret arrives sealed; the live one moves to previous_secret as it is (both are
-- sealed to the webhook, not to the column).
drop function app.rotate_webhook_secret(uuid, text, interval);
create function app.rotate_webhook_secret(webhook uuid, new_secret bytea, overlap interval)
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
revoke execute on function app.rotate_webhook_secret(uuid, bytea, interval) from public;
grant execute on function app.rotate_webhook_secret(uuid, bytea, interval) to authenticated;

-- Re-encrypting a value is no change to its row: a rotation (which says so in its
-- transaction) leaves updated_at, and what follows it such as calendar feeds, alone.
create or replace function app.touch_updated_at() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if tg_op = 'UPDATE' and current_setting('slotease.rotating_keys', true) = 'on' then
    new.updated_at := old.updated_at;
  else
    new.updated_at := now();
  end if;
  return new;
end
$$;

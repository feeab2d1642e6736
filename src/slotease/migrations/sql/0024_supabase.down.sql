-- Back to 0024: no profiles made from Supabase Auth's users. app.erase_user,
-- app.close_my_account and app.accounts_in_supabase keep their 0024 bodies: where SlotEase
-- owns auth.users they do exactly what 0018's did, and where Supabase Auth owns it 0018's
-- would fail on its first write there.
drop trigger if exists slotease_user_profile on auth.users;
drop function app.profile_from_auth_user();
drop function app.profile_from_metadata(uuid, jsonb);

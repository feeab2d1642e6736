-- Wait briefly for locks rather than queue every other statement behind this migration.
set local lock_timeout = '5s';

-- The last-admin refusal takes a SQLSTATE of the SlotEase class SE (see db/catalogue.py):
-- P0409 sat in PL/pgSQL's own class P0, where PostgreSQL may one day define it.
create or replace function app.keep_one_admin() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  if old.role = 'admin'
     and (tg_op = 'DELETE' or new.role <> 'admin')
     and exists (select 1 from public.organizations o where o.id = old.organization_id)
     and not exists (
       select 1 from public.organization_members m
       where m.organization_id = old.organization_id and m.role = 'admin' and m.user_id <> old.user_id
     ) then
    raise exception 'an organization must keep at least one admin'
      using errcode = 'SEADM', hint = 'last_admin';
  end if;
  return coalesce(new, old);
end
$$;

-- The last-admin refusal back to its first SQLSTATE.
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
      using errcode = 'P0409', hint = 'last_admin';
  end if;
  return coalesce(new, old);
end
$$;

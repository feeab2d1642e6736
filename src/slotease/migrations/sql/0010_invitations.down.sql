-- Undo 0010.
drop trigger if exists notifications_urgent_audit on public.notifications;

drop policy if exists notifications_insert_authenticated on public.notifications;
create policy notifications_insert_authenticated on public.notifications for insert to authenticated
  with check (organization_id = any ((select app.member_org_ids())::uuid[]) or (select app.is_super_admin()));

drop policy if exists waitlist_entries_insert_authenticated on public.waitlist_entries;
create policy waitlist_entries_insert_authenticated on public.waitlist_entries
  for insert to authenticated
  with check (user_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
              or (select app.is_super_admin()));

drop policy if exists tickets_insert_authenticated on public.tickets;
create policy tickets_insert_authenticated on public.tickets for insert to authenticated
  with check (user_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
              or (select app.is_super_admin()));

drop policy if exists appointments_insert_authenticated on public.appointments;
create policy appointments_insert_authenticated on public.appointments for insert to authenticated
  with check (customer_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
              or (select app.is_super_admin()));

drop function if exists app.deals_with(uuid, uuid);
drop function if exists app.accept_invitation(uuid);
drop table if exists public.invitations;
drop function if exists app.my_email();

create function app.user_id_by_email(email text) returns uuid
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  if cardinality(app.admin_org_ids()) = 0 and not app.is_super_admin() then
    return null;
  end if;
  return (select u.id from auth.users u where lower(u.email) = lower(user_id_by_email.email));
end
$$;
revoke execute on function app.user_id_by_email(text) from public;
grant execute on function app.user_id_by_email(text) to authenticated, service_role;

-- Members by invitation; notifications only to users who deal with an organization.

-- ---------------------------------------------------------------------------------------
-- Nobody but the platform's operators may turn an email into a user id: adding members goes
-- through invitations, which answer the same whether or not the address has an account.
-- ---------------------------------------------------------------------------------------
drop function app.user_id_by_email(text);

-- The signed-in caller's address, read from auth.users rather than trusted from the token,
-- whose claims outlive a change of address.
create function app.my_email() returns text
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return (select lower(u.email) from auth.users u where u.id = auth.uid());
end
$$;
revoke execute on function app.my_email() from public;
grant execute on function app.my_email() to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Invitations: an admin invites an address to a role; the holder of that address accepts
-- (becoming a member) or declines; the admin may revoke. Only the token's hash is kept.
-- ---------------------------------------------------------------------------------------
create table public.invitations (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  email text not null check (length(email) between 3 and 320),
  role text not null check (role in ('staff', 'admin')),
  token_hash text not null,
  status text not null default 'pending' check (status in ('pending', 'accepted')),
  invited_by uuid references auth.users (id) on delete set null,
  accepted_by uuid references auth.users (id) on delete set null,
  expires_at timestamptz not null default now() + interval '7 days',
  accepted_at timestamptz,
  created_at timestamptz not null default now(),
  primary key (id, organization_id),
  unique (token_hash, organization_id)
);
create index invitations_org_idx on public.invitations (organization_id, created_at);
create index invitations_email_idx on public.invitations (lower(email), created_at);
create index invitations_id_idx on public.invitations (id);

alter table public.invitations enable row level security;
alter table public.invitations force row level security;

-- Admins see and remove their organization's invitations; the invitee sees and declines
-- their own. There is no update policy: accepting goes through app.accept_invitation(), so
-- nobody raises an invitation's role or revives a spent one by writing the row.
create policy invitations_select_authenticated on public.invitations for select to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin())
         or lower(email) = (select app.my_email()));
create policy invitations_insert_authenticated on public.invitations for insert to authenticated
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy invitations_delete_authenticated on public.invitations for delete to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin())
         or lower(email) = (select app.my_email()));

grant insert, delete on public.invitations to authenticated;
-- The token's hash is never readable through the API role.
grant select (id, organization_id, email, role, status, invited_by, accepted_by, expires_at,
  accepted_at, created_at) on public.invitations to authenticated;
grant all on public.invitations to service_role;

-- Accepting: the caller's address must be the invitation's, and the invitation pending and
-- unexpired; it is spent in the same statement that makes the membership (an existing member
-- takes the invited role). Nothing comes back for any other invitation, so that a caller
-- learns nothing about invitations it cannot see.
create function app.accept_invitation(invitation uuid) returns setof public.organization_members
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  caller uuid := auth.uid();
  invited public.invitations;
begin
  if caller is null then
    return;
  end if;
  select * into invited from public.invitations i
  where i.id = invitation and i.status = 'pending' and i.expires_at > now()
    and lower(i.email) = app.my_email()
  for update;
  if invited.id is null then
    return;
  end if;
  update public.invitations i set status = 'accepted', accepted_by = caller, accepted_at = now()
  where i.id = invited.id and i.organization_id = invited.organization_id;
  return query
    insert into public.organization_members as m (organization_id, user_id, role)
    values (invited.organization_id, caller, invited.role)
    on conflict (organization_id, user_id) do update set role = excluded.role
    returning m.*;
end
$$;
revoke execute on function app.accept_invitation(uuid) from public;
grant execute on function app.accept_invitation(uuid) to authenticated;

-- ---------------------------------------------------------------------------------------
-- Who an organization deals with: its members, and the customers with an appointment, a
-- ticket or a waitlist entry there. Answers only for organizations the caller works for
-- (false otherwise), so that it tells nobody about another organization's customers.
-- ---------------------------------------------------------------------------------------
create function app.deals_with(org uuid, person uuid) returns boolean
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  if not (org = any (app.member_org_ids()) or app.is_super_admin()) then
    return false;
  end if;
  return exists (select 1 from public.organization_members m
                 where m.organization_id = org and m.user_id = person)
    or exists (select 1 from public.appointments a
               where a.customer_id = person and a.organization_id = org)
    or exists (select 1 from public.tickets t where t.user_id = person and t.organization_id = org)
    or exists (select 1 from public.waitlist_entries w
               where w.user_id = person and w.organization_id = org);
end
$$;
revoke execute on function app.deals_with(uuid, uuid) from public;
grant execute on function app.deals_with(uuid, uuid) to authenticated, service_role;

-- Staff book for themselves and for the people their organization deals with, not for any
-- user whose id they learnt.
drop policy appointments_insert_authenticated on public.appointments;
create policy appointments_insert_authenticated on public.appointments for insert to authenticated
  with check (customer_id = (select auth.uid())
              or (organization_id = any ((select app.member_org_ids())::uuid[])
                  and app.deals_with(organization_id, customer_id))
              or (select app.is_super_admin()));

-- The same for the line and the waitlist: staff add tickets and waitlist entries for walk-ins
-- without an account and for people their organization already deals with, never for a user
-- id learned elsewhere.
drop policy tickets_insert_authenticated on public.tickets;
create policy tickets_insert_authenticated on public.tickets for insert to authenticated
  with check (user_id = (select auth.uid())
              or (organization_id = any ((select app.member_org_ids())::uuid[])
                  and (user_id is null or app.deals_with(organization_id, user_id)))
              or (select app.is_super_admin()));
drop policy waitlist_entries_insert_authenticated on public.waitlist_entries;
create policy waitlist_entries_insert_authenticated on public.waitlist_entries
  for insert to authenticated
  with check (user_id = (select auth.uid())
              or (organization_id = any ((select app.member_org_ids())::uuid[])
                  and app.deals_with(organization_id, user_id))
              or (select app.is_super_admin()));

-- Staff message the people their organization deals with; an urgent message (which ignores
-- the recipient's quiet hours) is for its admins only.
drop policy notifications_insert_authenticated on public.notifications;
create policy notifications_insert_authenticated on public.notifications for insert to authenticated
  with check ((select app.is_super_admin())
              or (organization_id = any ((select app.member_org_ids())::uuid[])
                  and app.deals_with(organization_id, user_id)
                  and (not data @> '{"urgent": true}'
                       or organization_id = any ((select app.admin_org_ids())::uuid[]))));

-- Urgent messages sent by people are audited; the system's own (a ticket called) are not.
create trigger notifications_urgent_audit after insert on public.notifications
  for each row when (new.data @> '{"urgent": true}' and current_user = 'authenticated')
  execute function app.audit_row('notifications');

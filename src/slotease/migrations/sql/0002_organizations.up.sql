-- Adding a member by email: the API role cannot read auth.users, so this helper answers the
-- one question it needs, and only to admins of some organization, so that it cannot be used
-- to probe which emails have an account.
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

-- The directory's text and area filters. Under row-level security PostgreSQL only uses an
-- index for a condition whose operator is leakproof, and neither `@@` (GIN on `search`) nor
-- `<@` (GiST on `location`) is, so a search run as the caller scans every organization.
-- This helper runs those index scans as the owner and returns candidate ids; the caller's
-- query then reads the rows by primary key (uuid equality is leakproof) with RLS applied.
-- It returns only active organizations, which every role may read anyway: nothing leaks.
create function app.directory_candidates(query tsquery, area box) returns setof uuid
  language plpgsql stable security definer
  set search_path = ''
  rows 200
  as $$
begin
  if area is null then
    return query select o.id from public.organizations o
      where o.is_active and o.search @@ query;
  elsif query is null then
    return query select o.id from public.organizations o
      where o.is_active and o.location <@ area;
  else
    return query select o.id from public.organizations o
      where o.is_active and o.location <@ area and o.search @@ query;
  end if;
end
$$;
revoke execute on function app.directory_candidates(tsquery, box) from public;
grant execute on function app.directory_candidates(tsquery, box) to anon, authenticated,
  service_role;

-- Directory pages by (name, id) without sorting every organization.
create index organizations_directory_idx on public.organizations (name, id) where is_active;

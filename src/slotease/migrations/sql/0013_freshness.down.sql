-- Undo 0013.
grant execute on function app.expire_called_tickets(uuid) to anon;
drop function if exists app.availability_version(uuid);
drop trigger if exists organizations_availability_update on public.organizations;
drop trigger if exists services_availability_delete on public.services;
drop trigger if exists services_availability_update on public.services;
drop trigger if exists services_availability_insert on public.services;
do $$
declare
  shaping text;
  event text;
begin
  foreach shaping in array array['appointments', 'service_working_hours', 'service_closures'] loop
    foreach event in array array['insert', 'update', 'delete', 'truncate'] loop
      execute format('drop trigger if exists %s on public.%I',
                     shaping || '_availability_' || event, shaping);
    end loop;
  end loop;
end
$$;
drop function if exists app.bump_availability_of_organizations();
drop function if exists app.bump_availability_of_rows();
drop function if exists app.bump_availability_versions(uuid[], uuid[]);
drop table if exists public.availability_versions;
drop sequence if exists app.availability_version_seq;

-- Undo 0001. Roles are cluster-wide and may serve other databases, so they stay; Supabase's own
-- auth objects stay too: only what this migration created (owned by the current user) goes.
drop table if exists public.audit_log, public.webhook_deliveries, public.webhooks,
  public.idempotency_keys, public.api_keys, public.analytics_events,
  public.notification_preferences, public.notifications, public.feedback, public.tickets,
  public.queues, public.appointments, public.service_closures, public.service_working_hours,
  public.services, public.user_profiles, public.organization_members, public.organizations
  cascade;
drop schema if exists app cascade;

do $$
begin
  if exists (select 1 from pg_tables where schemaname = 'auth' and tablename = 'users'
             and tableowner = current_user) then
    drop table auth.users cascade;
  end if;
  if exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
             where n.nspname = 'auth' and pg_get_userbyid(p.proowner) = current_user) then
    drop function if exists auth.uid(), auth.jwt(), auth.role();
  end if;
  if not exists (select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = 'auth')
     and not exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                     where n.nspname = 'auth') then
    drop schema if exists auth;
  end if;
end
$$;

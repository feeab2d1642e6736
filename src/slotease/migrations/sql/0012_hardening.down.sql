-- Undo 0012.
-- Realtime (last in the upgrade, so first here)
drop function app.realtime_topic_access(text[], uuid[]);

drop trigger appointments_capacity_update on public.appointments;
drop trigger appointments_capacity on public.appointments;
create trigger appointments_capacity
  before insert or update of starts_at, ends_at, status, service_id on public.appointments
  for each row execute function app.enforce_capacity();

-- The audit rows scrubbed by the upgrade stay scrubbed: the secrets are gone for good.

drop trigger organizations_activation on public.organizations;
drop function app.check_organization_activation();
drop trigger tickets_customer_insert on public.tickets;
drop function app.check_customer_ticket();
drop trigger appointments_customer_insert on public.appointments;
drop function app.check_customer_appointment();

drop function app.rotate_webhook_secret(uuid, text, interval);
revoke select on public.webhooks from authenticated;
grant select on public.webhooks to authenticated;

create or replace function app.audit_row() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  old_row jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  new_row jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  any_row jsonb := coalesce(new_row, old_row);
begin
  insert into public.audit_log
    (organization_id, table_name, operation, row_id, actor_id, actor_role, actor_api_key_id,
     old_row, new_row)
  values (
    coalesce(any_row ->> 'organization_id',
             case when tg_table_name = 'organizations' then any_row ->> 'id' end)::uuid,
    -- On a partitioned table the trigger runs on the partition: record the table's own name.
    coalesce(tg_argv[0], tg_table_name),
    tg_op,
    coalesce(any_row ->> 'id', any_row ->> 'user_id'),
    auth.uid(),
    coalesce(auth.role(), session_user),
    (select g.key_id from app.api_key_grant() g limit 1),
    old_row,
    new_row
  );
  return null;
end
$$;
drop function app.redact_secrets(jsonb);

drop policy analytics_events_insert_authenticated on public.analytics_events;
create policy analytics_events_insert_authenticated on public.analytics_events
  for insert to authenticated
  with check (
    (user_id = (select auth.uid()) and user_id is not null)
    or (user_id is null and organization_id = any ((select app.member_org_ids())::uuid[]))
  );

create or replace function app.ensure_monthly_partitions(parent regclass, months_back integer, months_ahead integer)
  returns integer
  -- Security definer so that the maintenance job, running as service_role, may create
  -- partitions of tables it does not own; only service_role may execute it.
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  parent_schema text;
  parent_name text;
  key_column text;
  default_part regclass;
  month_start date;
  last_month date;
  part_name text;
  lower_bound timestamptz;
  upper_bound timestamptz;
  created integer := 0;
  has_rows boolean;
begin
  select n.nspname, c.relname into parent_schema, parent_name
  from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = parent;

  select a.attname into key_column
  from pg_partitioned_table p
  join pg_attribute a on a.attrelid = p.partrelid and a.attnum = p.partattrs[0]
  where p.partrelid = parent;

  select i.inhrelid::regclass into default_part
  from pg_inherits i join pg_class c on c.oid = i.inhrelid
  where i.inhparent = parent and pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';

  month_start := (date_trunc('month', now() at time zone 'UTC') - make_interval(months => months_back))::date;
  last_month := (date_trunc('month', now() at time zone 'UTC') + make_interval(months => months_ahead))::date;

  while month_start <= last_month loop
    part_name := format('%s_p%s', parent_name, to_char(month_start, 'YYYYMM'));
    lower_bound := month_start::timestamp at time zone 'UTC';
    upper_bound := (month_start + interval '1 month')::timestamp at time zone 'UTC';

    if to_regclass(format('%I.%I', parent_schema, part_name)) is null then
      has_rows := false;
      if default_part is not null then
        execute format('select exists (select 1 from %s where %I >= %L and %I < %L)',
                       default_part, key_column, lower_bound, key_column, upper_bound)
          into has_rows;
      end if;

      if has_rows then
        execute format('lock table %s in access exclusive mode', default_part);
        execute format('create table %I.%I (like %s including defaults including constraints)',
                       parent_schema, part_name, parent);
        execute format(
          'with moved as (delete from %s where %I >= %L and %I < %L returning *) '
          'insert into %I.%I select * from moved',
          default_part, key_column, lower_bound, key_column, upper_bound, parent_schema, part_name);
        execute format('alter table %s attach partition %I.%I for values from (%L) to (%L)',
                       parent, parent_schema, part_name, lower_bound, upper_bound);
      else
        execute format('create table %I.%I partition of %s for values from (%L) to (%L)',
                       parent_schema, part_name, parent, lower_bound, upper_bound);
      end if;
      -- A partition can be queried on its own; it must not be a way around the parent's RLS.
      execute format('alter table %I.%I enable row level security', parent_schema, part_name);
      execute format('alter table %I.%I force row level security', parent_schema, part_name);
      if parent = 'public.audit_log'::regclass then
        execute format('create trigger %I before truncate on %I.%I for each statement '
                       'execute function app.reject_audit_change()',
                       part_name || '_no_truncate', parent_schema, part_name);
      end if;
      created := created + 1;
    end if;
    month_start := (month_start + interval '1 month')::date;
  end loop;
  return created;
end
$$;

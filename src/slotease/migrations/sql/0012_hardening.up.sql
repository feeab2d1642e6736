-- Hardening of realtime access checks and other review findings.

-- ---------------------------------------------------------------------------------------
-- Analytics events from the API: for an organization only by its members (or its API key),
-- and never one of the domain's own event types, which only the triggers of migration 0007
-- record (they run as the tables' owner, outside these policies). Otherwise staff could
-- inflate their own figures, or anyone another organization's.
-- ---------------------------------------------------------------------------------------
drop policy analytics_events_insert_authenticated on public.analytics_events;
create policy analytics_events_insert_authenticated on public.analytics_events
  for insert to authenticated
  with check (
    event_type !~ '^(appointment|ticket|queue|notification)\.'
    and (
      (user_id = (select auth.uid()) and user_id is not null
       and (organization_id is null
            or organization_id = any ((select app.member_org_ids())::uuid[])
            or (select app.is_super_admin())))
      or (user_id is null and organization_id = any ((select app.member_org_ids())::uuid[]))
    )
  );

-- ---------------------------------------------------------------------------------------
-- Secrets and hashes never enter the audit log: a column named `secret`, `*_secret`, `hash`,
-- `*_hash`, `password` or `*_password` is recorded as "[redacted]" (null stays null, so the
-- trail still shows whether there was one). A rule on the name rather than a list per table,
-- so a secret column added later is covered without remembering this function.
-- ---------------------------------------------------------------------------------------
create function app.redact_secrets(row_data jsonb) returns jsonb
  language sql immutable
  set search_path = ''
  as $$
    select case when row_data is null then null else (
      select coalesce(jsonb_object_agg(
        f.key,
        case when f.key ~ '(^|_)(secret|hash|password)$' and f.value <> 'null'::jsonb
             then '"[redacted]"'::jsonb else f.value end), '{}'::jsonb)
      from jsonb_each(row_data) f) end
  $$;
revoke execute on function app.redact_secrets(jsonb) from public;

create or replace function app.audit_row() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
declare
  old_row jsonb := case when tg_op <> 'INSERT' then app.redact_secrets(to_jsonb(old)) end;
  new_row jsonb := case when tg_op <> 'DELETE' then app.redact_secrets(to_jsonb(new)) end;
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

-- The copies recorded before this revision are scrubbed. The log is append-only for everyone;
-- the migration (its owner, in one transaction holding the table's lock) lifts that for this
-- one statement.
alter table public.audit_log disable trigger audit_log_append_only;
update public.audit_log
set old_row = app.redact_secrets(old_row), new_row = app.redact_secrets(new_row)
where app.redact_secrets(old_row) is distinct from old_row
   or app.redact_secrets(new_row) is distinct from new_row;
alter table public.audit_log enable trigger audit_log_append_only;

-- ---------------------------------------------------------------------------------------
-- A webhook's secret is shown once, when it is made (the API generates it), and is read
-- afterwards only by the delivery job, as service_role. Rotation moves the live secret to
-- previous_secret, which reads it: that runs in a function checking its caller is an admin.
-- ---------------------------------------------------------------------------------------
revoke select on public.webhooks from authenticated;
grant select (id, organization_id, url, events, previous_secret_expires_at, is_active,
  consecutive_failures, disabled_at, created_at, updated_at) on public.webhooks to authenticated;

create function app.rotate_webhook_secret(webhook uuid, new_secret text, overlap interval)
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
revoke execute on function app.rotate_webhook_secret(uuid, text, interval) from public;
grant execute on function app.rotate_webhook_secret(uuid, text, interval) to authenticated;

-- ---------------------------------------------------------------------------------------
-- What the database refuses whatever the route says. A caller acting through the API is
-- `authenticated` (security definer functions run as their owner, and the system as
-- service_role).
-- ---------------------------------------------------------------------------------------
-- A customer books; any other status is the organization's to set.
create function app.check_customer_appointment() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if current_user = 'authenticated' and new.status <> 'booked'
     and not app.is_org_member(new.organization_id) then
    raise exception 'a customer may only book an appointment'
      using errcode = '42501', hint = 'customer_fields';
  end if;
  return new;
end
$$;
revoke execute on function app.check_customer_appointment() from public;
create trigger appointments_customer_insert before insert on public.appointments
  for each row execute function app.check_customer_appointment();

-- A customer's ticket joins the end of the line (now), or a checked-in appointment's place at
-- its booked time; the update rules of migration 0004 already keep the place afterwards.
create function app.check_customer_ticket() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if current_user = 'authenticated'
     and new.line_position_at is distinct from coalesce(new.appointment_starts_at, now())
     and not app.is_org_member(new.organization_id) then
    raise exception 'only the organization may set a place in the line'
      using errcode = '42501', hint = 'customer_fields';
  end if;
  return new;
end
$$;
revoke execute on function app.check_customer_ticket() from public;
create trigger tickets_customer_insert before insert on public.tickets
  for each row execute function app.check_customer_ticket();

-- Suspending or reinstating an organization is the platform's decision, not its admins'.
create function app.check_organization_activation() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if current_user = 'authenticated' and new.is_active is distinct from old.is_active
     and not app.is_super_admin() then
    raise exception 'only a platform admin may activate or suspend an organization'
      using errcode = '42501', hint = 'is_active';
  end if;
  return new;
end
$$;
revoke execute on function app.check_organization_activation() from public;
create trigger organizations_activation before update of is_active on public.organizations
  for each row execute function app.check_organization_activation();

-- ---------------------------------------------------------------------------------------
-- Partition maintenance moves rows that landed in the audit log's default partition into
-- their month; the append-only trigger refused that delete, and the whole run failed.
-- ---------------------------------------------------------------------------------------
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
        -- Moving audit rows is no change to the trail, but the append-only trigger cannot
        -- tell: it is lifted for this statement only, under the lock taken above.
        if parent = 'public.audit_log'::regclass then
          execute format('alter table %s disable trigger audit_log_append_only', default_part);
        end if;
        execute format(
          'with moved as (delete from %s where %I >= %L and %I < %L returning *) '
          'insert into %I.%I select * from moved',
          default_part, key_column, lower_bound, key_column, upper_bound, parent_schema, part_name);
        if parent = 'public.audit_log'::regclass then
          execute format('alter table %s enable trigger audit_log_append_only', default_part);
        end if;
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

-- ---------------------------------------------------------------------------------------
-- Capacity is checked when a row takes a place, not when one that already holds it moves on
-- (booked -> checked in -> in service): otherwise lowering a service's capacity would leave
-- its booked customers unable to check in, and the refusal surfaced as a server error.
-- ---------------------------------------------------------------------------------------
drop trigger appointments_capacity on public.appointments;
create trigger appointments_capacity
  before insert on public.appointments
  for each row execute function app.enforce_capacity();
create trigger appointments_capacity_update
  before update of starts_at, ends_at, status, service_id on public.appointments
  for each row
  when (old.status not in ('booked', 'checked_in', 'in_service')
        or (new.starts_at, new.ends_at, new.service_id)
           is distinct from (old.starts_at, old.ends_at, old.service_id))
  execute function app.enforce_capacity();

-- ---------------------------------------------------------------------------------------
-- Realtime
-- Which of a WebSocket connection's topics its caller may follow, for a whole list at once (a
-- subscribe of many topics, the periodic re-check of a connection): one call instead of a
-- transaction per topic. Security invoker, so the tables' own policies give the answer;
-- `allowed` is null where the resource does not exist for the caller. A personal kind whose
-- table the role may not read at all (anon: tickets, appointments) is refused without querying
-- the table, since one reference to it would make the whole statement fail.
create function app.realtime_topic_access(kinds text[], ids uuid[])
  returns table (topic_kind text, topic_id uuid, allowed boolean)
  language plpgsql stable security invoker
  set search_path = ''
  as $$
declare
  personal text;
begin
  return query
    select t.kind, t.id, case t.kind
        when 'queue' then (select true from public.queues q where q.id = t.id)
        when 'organization' then
          (select app.is_org_member(o.id) from public.organizations o where o.id = t.id)
        else coalesce(auth.uid() = t.id, false)
      end
    from unnest(kinds, ids) as t (kind, id)
    where t.kind in ('queue', 'organization', 'user');
  foreach personal in array array['ticket', 'appointment'] loop
    if has_table_privilege(format('public.%I', personal || 's'), 'select') then
      return query execute format(
        'select t.kind, t.id, (select true from public.%I r where r.id = t.id limit 1)'
        ' from unnest($1, $2) as t (kind, id) where t.kind = $3',
        personal || 's'
      ) using kinds, ids, personal;
    else
      return query
        select t.kind, t.id, false from unnest(kinds, ids) as t (kind, id) where t.kind = personal;
    end if;
  end loop;
end
$$;

grant execute on function app.realtime_topic_access(text[], uuid[]) to anon, authenticated;

-- SlotEase foundation: roles, Supabase-compatible auth schema, the whole domain schema,
-- row-level security on every table, audit triggers and partition maintenance.
-- Runs unchanged on a plain PostgreSQL 15+ and on a Supabase project's database.

-- ---------------------------------------------------------------------------------------
-- Roles. On Supabase they exist already; elsewhere we create them with the same meaning.
-- ---------------------------------------------------------------------------------------
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  -- The login role of the API: NOINHERIT, so it holds no privilege of its own and can only
  -- act after SET ROLE to one of the three roles above, where RLS applies.
  if not exists (select 1 from pg_roles where rolname = 'slotease_app') then
    create role slotease_app login noinherit;
  end if;
end
$$;

grant anon, authenticated, service_role to slotease_app;

create schema if not exists auth;
create schema if not exists app;

grant usage on schema public, app, auth to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- auth: the subset of Supabase's schema the policies rely on, created only where absent.
-- ---------------------------------------------------------------------------------------
do $$
begin
  if to_regclass('auth.users') is null then
    create table auth.users (
      id uuid primary key default gen_random_uuid(),
      email text not null,
      encrypted_password text,
      email_confirmed_at timestamptz,
      phone text,
      raw_app_meta_data jsonb not null default '{}',
      raw_user_meta_data jsonb not null default '{}',
      last_sign_in_at timestamptz,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    );
    create unique index users_email_lower_key on auth.users (lower(email));
    alter table auth.users enable row level security;
    alter table auth.users force row level security;
    grant select, insert, update, delete on auth.users to service_role;
  end if;

  if to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb
      language sql stable
      as $f$
        select coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
      $f$;
  end if;

  if to_regprocedure('auth.uid()') is null then
    create function auth.uid() returns uuid
      language sql stable
      as $f$
        select coalesce(
          nullif(current_setting('request.jwt.claim.sub', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
        )::uuid
      $f$;
  end if;

  if to_regprocedure('auth.role()') is null then
    create function auth.role() returns text
      language sql stable
      as $f$
        select coalesce(
          nullif(current_setting('request.jwt.claim.role', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
        )::text
      $f$;
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Platform tables (not tenant data).
-- ---------------------------------------------------------------------------------------
create table app.platform_admins (
  user_id uuid primary key references auth.users (id) on delete cascade,
  created_at timestamptz not null default now()
);

create table app.refresh_tokens (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  family_id uuid not null,
  token_hash text not null unique,
  expires_at timestamptz not null,
  used_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz not null default now()
);
create index refresh_tokens_family_idx on app.refresh_tokens (family_id);
create index refresh_tokens_user_idx on app.refresh_tokens (user_id);

-- ---------------------------------------------------------------------------------------
-- Generic helpers.
-- ---------------------------------------------------------------------------------------
create function app.touch_updated_at() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  new.updated_at := now();
  return new;
end
$$;

create function app.haversine_km(lat1 double precision, lng1 double precision,
                                 lat2 double precision, lng2 double precision)
  returns double precision
  language sql immutable parallel safe
  as $$
    select 6371.0088 * 2 * asin(sqrt(
      power(sin(radians(lat2 - lat1) / 2), 2)
      + cos(radians(lat1)) * cos(radians(lat2)) * power(sin(radians(lng2 - lng1) / 2), 2)
    ))
  $$;

-- ---------------------------------------------------------------------------------------
-- Tenants and people.
-- ---------------------------------------------------------------------------------------
create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(btrim(name)) between 1 and 200),
  slug text not null unique check (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
  kind text not null check (kind in ('hospital', 'clinic', 'bank', 'government', 'salon', 'other')),
  timezone text not null check (length(timezone) between 1 and 64),
  address text check (length(address) <= 500),
  -- x = longitude, y = latitude; a GiST index serves the bounding-box part of nearest search.
  location point,
  settings jsonb not null default '{}',
  is_active boolean not null default true,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  search tsvector generated always as (
    to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(address, ''))
  ) stored
);
create index organizations_location_idx on public.organizations using gist (location);
create index organizations_search_idx on public.organizations using gin (search);
create index organizations_kind_idx on public.organizations (kind) where is_active;
create index organizations_settings_idx on public.organizations using gin (settings);

create table public.organization_members (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('staff', 'admin')),
  created_at timestamptz not null default now(),
  primary key (organization_id, user_id)
);
-- Policies look memberships up by user.
create index organization_members_user_idx on public.organization_members (user_id)
  include (organization_id, role);

create table public.user_profiles (
  user_id uuid primary key references auth.users (id) on delete cascade,
  full_name text not null default '' check (length(full_name) <= 200),
  phone text check (phone ~ '^\+?[0-9 ()-]{5,32}$'),
  timezone text,
  locale text not null default 'en',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- ---------------------------------------------------------------------------------------
-- Services, hours, closures.
-- ---------------------------------------------------------------------------------------
create table public.services (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 200),
  description text,
  duration_minutes integer not null check (duration_minutes between 5 and 1440),
  capacity integer not null default 1 check (capacity between 1 and 10000),
  buffer_minutes integer not null default 0 check (buffer_minutes between 0 and 1440),
  min_notice_minutes integer not null default 0 check (min_notice_minutes between 0 and 525600),
  max_advance_days integer not null default 60 check (max_advance_days between 1 and 730),
  slot_interval_minutes integer not null check (slot_interval_minutes between 5 and 1440),
  price numeric(12, 2) check (price >= 0),
  currency text check (currency ~ '^[A-Z]{3}$'),
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- Citus-ready: the tenant column is part of every key on tenant data.
  primary key (id, organization_id)
);
create index services_org_idx on public.services (organization_id, name) where is_active;
-- Every column a policy filters on leads an index that holds all rows, inactive ones included.
create index services_organization_idx on public.services (organization_id);

create table public.service_working_hours (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  service_id uuid not null,
  weekday smallint not null check (weekday between 0 and 6),
  start_time time not null,
  end_time time not null,
  primary key (id, organization_id),
  foreign key (service_id, organization_id)
    references public.services (id, organization_id) on delete cascade,
  check (start_time < end_time)
);
-- Covering index: the slot engine reads a service's whole week from the index alone.
create index service_working_hours_service_idx on public.service_working_hours (service_id, weekday)
  include (start_time, end_time);
create index service_working_hours_org_idx on public.service_working_hours (organization_id);

create table public.service_closures (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  service_id uuid not null,
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  reason text check (length(reason) <= 500),
  created_at timestamptz not null default now(),
  primary key (id, organization_id),
  foreign key (service_id, organization_id)
    references public.services (id, organization_id) on delete cascade,
  check (starts_at < ends_at)
);
create index service_closures_service_idx on public.service_closures (service_id, ends_at)
  include (starts_at);
create index service_closures_org_idx on public.service_closures (organization_id);

-- ---------------------------------------------------------------------------------------
-- Appointments: range-partitioned by start time, monthly partitions made ahead.
-- ---------------------------------------------------------------------------------------
create table public.appointments (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  service_id uuid not null,
  customer_id uuid not null references auth.users (id) on delete cascade,
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  status text not null default 'booked'
    check (status in ('booked', 'checked_in', 'in_service', 'completed', 'cancelled', 'no_show')),
  notes text check (length(notes) <= 2000),
  booked_by uuid references auth.users (id) on delete set null,
  cancelled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (id, starts_at, organization_id),
  -- Services are deactivated, never deleted, while appointments refer to them.
  foreign key (service_id, organization_id) references public.services (id, organization_id),
  check (starts_at < ends_at)
) partition by range (starts_at);
create table public.appointments_default partition of public.appointments default;
-- The slot and booking read path: active places of one service in a time window, from the
-- index alone.
create index appointments_service_active_idx on public.appointments (service_id, starts_at)
  include (ends_at, status)
  where status in ('booked', 'checked_in', 'in_service');
create index appointments_customer_idx on public.appointments (customer_id, starts_at desc);
create index appointments_org_idx on public.appointments (organization_id, starts_at);
create index appointments_id_idx on public.appointments (id);

-- ---------------------------------------------------------------------------------------
-- Queues and tickets.
-- ---------------------------------------------------------------------------------------
create table public.queues (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  service_id uuid,
  name text not null check (length(btrim(name)) between 1 and 200),
  prefix text not null check (prefix ~ '^[A-Z]{1,3}$'),
  settings jsonb not null default '{}',
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (id, organization_id),
  foreign key (service_id, organization_id)
    references public.services (id, organization_id) on delete set null (service_id)
);
create index queues_org_idx on public.queues (organization_id);

create table public.tickets (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  queue_id uuid not null,
  user_id uuid references auth.users (id) on delete set null,
  appointment_id uuid,
  appointment_starts_at timestamptz,
  service_date date not null,
  number integer not null check (number > 0),
  priority smallint not null default 0 check (priority between 0 and 9),
  status text not null default 'waiting'
    check (status in ('waiting', 'called', 'serving', 'served', 'no_show', 'cancelled')),
  counter text check (length(counter) <= 64),
  -- Where the ticket stands among equal priorities: the join time for walk-ins, the booked
  -- time for appointments that checked in.
  line_position_at timestamptz not null default now(),
  estimated_wait_minutes integer,
  called_at timestamptz,
  serving_at timestamptz,
  finished_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (id, organization_id),
  unique (organization_id, queue_id, service_date, number),
  foreign key (queue_id, organization_id)
    references public.queues (id, organization_id) on delete cascade,
  foreign key (appointment_id, appointment_starts_at, organization_id)
    references public.appointments (id, starts_at, organization_id) on delete set null (appointment_id, appointment_starts_at)
);
-- The line itself: call-next and positions read waiting tickets in this order.
create index tickets_waiting_idx on public.tickets (queue_id, priority desc, line_position_at, id)
  where status = 'waiting';
create unique index tickets_one_active_per_user on public.tickets (organization_id, queue_id, user_id)
  where status in ('waiting', 'called', 'serving') and user_id is not null;
create index tickets_user_idx on public.tickets (user_id, created_at desc);
create index tickets_queue_day_idx on public.tickets (queue_id, service_date, status);

-- ---------------------------------------------------------------------------------------
-- Feedback.
-- ---------------------------------------------------------------------------------------
create table public.feedback (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  appointment_id uuid not null,
  appointment_starts_at timestamptz not null,
  service_id uuid not null,
  customer_id uuid references auth.users (id) on delete set null,
  rating smallint not null check (rating between 1 and 5),
  comment text check (length(comment) <= 2000),
  created_at timestamptz not null default now(),
  primary key (id, organization_id),
  unique (organization_id, appointment_id),
  foreign key (appointment_id, appointment_starts_at, organization_id)
    references public.appointments (id, starts_at, organization_id) on delete cascade
);
create index feedback_service_idx on public.feedback (service_id) include (rating);
create index feedback_customer_idx on public.feedback (customer_id);

-- ---------------------------------------------------------------------------------------
-- Notifications (partitioned by creation time) and preferences.
-- ---------------------------------------------------------------------------------------
create table public.notifications (
  id uuid not null default gen_random_uuid(),
  organization_id uuid references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  channel text not null check (channel in ('email', 'sms', 'push', 'in_app')),
  template text,
  subject text,
  body text,
  data jsonb not null default '{}',
  status text not null default 'queued'
    check (status in ('queued', 'sent', 'delivered', 'failed', 'skipped')),
  provider text,
  provider_message_id text,
  attempts integer not null default 0,
  last_error text,
  batch_id uuid,
  read_at timestamptz,
  sent_at timestamptz,
  created_at timestamptz not null default now(),
  primary key (id, created_at)
) partition by range (created_at);
create table public.notifications_default partition of public.notifications default;
create index notifications_user_idx on public.notifications (user_id, created_at desc);
create index notifications_unread_idx on public.notifications (user_id, created_at desc)
  where read_at is null and channel = 'in_app';
create index notifications_queued_idx on public.notifications (created_at) where status = 'queued';
create index notifications_batch_idx on public.notifications (batch_id) where batch_id is not null;
create index notifications_id_idx on public.notifications (id);

create table public.notification_preferences (
  user_id uuid primary key references auth.users (id) on delete cascade,
  email boolean not null default true,
  sms boolean not null default true,
  push boolean not null default true,
  in_app boolean not null default true,
  quiet_hours jsonb,
  fallback_order text[] not null default '{push,sms,email}',
  updated_at timestamptz not null default now()
);

-- ---------------------------------------------------------------------------------------
-- Analytics events (partitioned by event time).
-- ---------------------------------------------------------------------------------------
create table public.analytics_events (
  id uuid not null default gen_random_uuid(),
  organization_id uuid references public.organizations (id) on delete cascade,
  user_id uuid references auth.users (id) on delete set null,
  event_type text not null check (event_type ~ '^[a-z][a-z0-9_.]{0,63}$'),
  properties jsonb not null default '{}',
  occurred_at timestamptz not null default now(),
  primary key (id, occurred_at)
) partition by range (occurred_at);
create table public.analytics_events_default partition of public.analytics_events default;
create index analytics_events_org_idx on public.analytics_events (organization_id, occurred_at);
create index analytics_events_type_idx on public.analytics_events (event_type, occurred_at);
create index analytics_events_properties_idx on public.analytics_events using gin (properties jsonb_path_ops);

-- ---------------------------------------------------------------------------------------
-- API keys, idempotency keys, webhooks.
-- ---------------------------------------------------------------------------------------
create table public.api_keys (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 100),
  role text not null check (role in ('staff', 'admin')),
  prefix text not null,
  key_hash text not null,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  -- Set on rotation: the old key keeps working until then.
  expires_at timestamptz,
  revoked_at timestamptz,
  primary key (id, organization_id),
  unique (key_hash, organization_id)
);
create index api_keys_org_idx on public.api_keys (organization_id, created_at);

create table public.idempotency_keys (
  -- Who sent it: a user id, or 'key:<api key id>'. Keys are scoped to their sender.
  principal text not null,
  idempotency_key text not null check (length(idempotency_key) between 1 and 255),
  organization_id uuid,
  request_method text not null,
  request_path text not null,
  request_hash text not null,
  response_status integer,
  response_body jsonb,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null default now() + interval '24 hours',
  primary key (principal, idempotency_key)
);
create index idempotency_keys_expiry_idx on public.idempotency_keys (expires_at);

create table public.webhooks (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  url text not null check (length(url) <= 2000),
  events text[] not null check (cardinality(events) > 0),
  secret text not null,
  previous_secret text,
  previous_secret_expires_at timestamptz,
  is_active boolean not null default true,
  consecutive_failures integer not null default 0,
  disabled_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (id, organization_id)
);
create index webhooks_org_idx on public.webhooks (organization_id);
create index webhooks_events_idx on public.webhooks using gin (events);

create table public.webhook_deliveries (
  id uuid not null default gen_random_uuid(),
  organization_id uuid not null,
  webhook_id uuid not null,
  event text not null,
  payload jsonb not null,
  status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
  attempts integer not null default 0,
  response_code integer,
  latency_ms integer,
  last_error text,
  next_attempt_at timestamptz,
  delivered_at timestamptz,
  created_at timestamptz not null default now(),
  primary key (id, organization_id),
  foreign key (webhook_id, organization_id)
    references public.webhooks (id, organization_id) on delete cascade
);
create index webhook_deliveries_webhook_idx on public.webhook_deliveries (webhook_id, created_at desc);
create index webhook_deliveries_org_idx on public.webhook_deliveries (organization_id, created_at desc);
create index webhook_deliveries_due_idx on public.webhook_deliveries (next_attempt_at)
  where status = 'pending';

-- ---------------------------------------------------------------------------------------
-- Audit log: append-only, partitioned by time so retention drops whole months.
-- ---------------------------------------------------------------------------------------
create table public.audit_log (
  id bigint generated always as identity,
  organization_id uuid,
  table_name text not null,
  operation text not null check (operation in ('INSERT', 'UPDATE', 'DELETE')),
  row_id text,
  actor_id uuid,
  actor_role text,
  actor_api_key_id uuid,
  old_row jsonb,
  new_row jsonb,
  at timestamptz not null default now(),
  primary key (id, at)
) partition by range (at);
create table public.audit_log_default partition of public.audit_log default;
create index audit_log_org_idx on public.audit_log (organization_id, at desc);
create index audit_log_row_idx on public.audit_log (table_name, row_id);

-- ---------------------------------------------------------------------------------------
-- Membership helpers used by the policies: STABLE SECURITY DEFINER with a fixed, empty
-- search_path so that no caller can shadow the tables they read.
-- ---------------------------------------------------------------------------------------
-- Written in PL/pgSQL rather than SQL on purpose: a SECURITY DEFINER SQL function cannot be
-- inlined and is planned again on every call, while PL/pgSQL caches its plans per connection.
-- On the policy path that difference was most of the RLS overhead (see docs/performance.md).
create function app.api_key_grant(out organization_id uuid, out role text, out key_id uuid)
  returns setof record
  language plpgsql stable security definer
  set search_path = ''
  as $$
declare
  presented text := nullif(current_setting('slotease.api_key_hash', true), '');
begin
  if presented is null then
    return;
  end if;
  return query
    select k.organization_id, k.role, k.id
    from public.api_keys k
    where k.key_hash = presented
      and k.revoked_at is null
      and (k.expires_at is null or k.expires_at > now());
end
$$;

create function app.member_org_ids() returns uuid[]
  language plpgsql stable security definer
  set search_path = ''
  as $$
declare
  ids uuid[];
begin
  if nullif(current_setting('slotease.api_key_hash', true), '') is not null then
    select coalesce(array_agg(g.organization_id), '{}') into ids from app.api_key_grant() g;
    return ids;
  end if;
  select coalesce(array_agg(m.organization_id), '{}') into ids
  from public.organization_members m where m.user_id = auth.uid();
  return ids;
end
$$;

create function app.admin_org_ids() returns uuid[]
  language plpgsql stable security definer
  set search_path = ''
  as $$
declare
  ids uuid[];
begin
  if nullif(current_setting('slotease.api_key_hash', true), '') is not null then
    select coalesce(array_agg(g.organization_id), '{}') into ids
    from app.api_key_grant() g where g.role = 'admin';
    return ids;
  end if;
  select coalesce(array_agg(m.organization_id), '{}') into ids
  from public.organization_members m where m.user_id = auth.uid() and m.role = 'admin';
  return ids;
end
$$;

create function app.is_super_admin() returns boolean
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return exists (select 1 from app.platform_admins p where p.user_id = auth.uid());
end
$$;

create function app.is_org_member(org uuid) returns boolean
  language sql stable security definer
  set search_path = ''
  as $$ select org = any (app.member_org_ids()) or app.is_super_admin() $$;

create function app.is_org_admin(org uuid) returns boolean
  language sql stable security definer
  set search_path = ''
  as $$ select org = any (app.admin_org_ids()) or app.is_super_admin() $$;

-- Who is acting, as stored in idempotency keys: a user, or an API key.
create function app.principal_id() returns text
  language sql stable security definer
  set search_path = ''
  as $$
    select coalesce(auth.uid()::text, (select 'key:' || g.key_id from app.api_key_grant() g limit 1))
  $$;

-- Staff may read the profiles of their colleagues and of customers who deal with them.
create function app.can_see_profile(profile_user uuid) returns boolean
  language sql stable security definer
  set search_path = ''
  as $$
    select profile_user = auth.uid()
      or app.is_super_admin()
      or exists (
        select 1 from public.organization_members m
        where m.user_id = profile_user and m.organization_id = any (app.member_org_ids())
      )
      or exists (
        select 1 from public.appointments a
        where a.customer_id = profile_user and a.organization_id = any (app.member_org_ids())
      )
      or exists (
        select 1 from public.tickets t
        where t.user_id = profile_user and t.organization_id = any (app.member_org_ids())
      )
  $$;

-- The creator of an organization becomes its first admin, whoever inserts the row.
create function app.add_creator_as_admin() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  if auth.uid() is not null then
    insert into public.organization_members (organization_id, user_id, role)
    values (new.id, auth.uid(), 'admin')
    on conflict do nothing;
  end if;
  return null;
end
$$;
create trigger organizations_creator_admin after insert on public.organizations
  for each row execute function app.add_creator_as_admin();

-- An organization never loses its last admin by a membership change.
create function app.keep_one_admin() returns trigger
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
create trigger organization_members_keep_admin before update or delete on public.organization_members
  for each row execute function app.keep_one_admin();

-- ---------------------------------------------------------------------------------------
-- Audit: every write to tenant tables, with who, when, operation, old and new row.
-- ---------------------------------------------------------------------------------------
create function app.audit_row() returns trigger
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

create function app.reject_audit_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  raise exception 'audit_log is append-only' using errcode = '42501';
end
$$;
create trigger audit_log_append_only before update or delete on public.audit_log
  for each row execute function app.reject_audit_change();
create trigger audit_log_no_truncate before truncate on public.audit_log
  for each statement execute function app.reject_audit_change();
-- Statement triggers are not inherited, and a partition can be truncated on its own.
create trigger audit_log_default_no_truncate before truncate on public.audit_log_default
  for each statement execute function app.reject_audit_change();

do $$
declare
  t text;
begin
  foreach t in array array[
    'organizations', 'organization_members', 'services', 'service_working_hours',
    'service_closures', 'appointments', 'queues', 'tickets', 'feedback', 'api_keys', 'webhooks'
  ] loop
    execute format(
      'create trigger %I after insert or update or delete on public.%I '
      'for each row execute function app.audit_row(%L)', t || '_audit', t, t);
  end loop;
  foreach t in array array[
    'organizations', 'user_profiles', 'services', 'appointments', 'queues', 'tickets',
    'webhooks', 'notification_preferences'
  ] loop
    execute format(
      'create trigger %I before update on public.%I '
      'for each row execute function app.touch_updated_at()', t || '_touch', t);
  end loop;
end
$$;

-- ---------------------------------------------------------------------------------------
-- Partition maintenance: monthly partitions made ahead; rows that already landed in the
-- default partition for a month are moved into the new partition.
-- ---------------------------------------------------------------------------------------
create function app.ensure_monthly_partitions(parent regclass, months_back integer, months_ahead integer)
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
revoke execute on function app.ensure_monthly_partitions(regclass, integer, integer) from public;
revoke execute on function app.audit_row(), app.add_creator_as_admin(), app.keep_one_admin(),
  app.reject_audit_change() from public;
grant execute on function app.ensure_monthly_partitions(regclass, integer, integer) to service_role;

select app.ensure_monthly_partitions('public.appointments', 3, 12);
select app.ensure_monthly_partitions('public.notifications', 1, 3);
select app.ensure_monthly_partitions('public.analytics_events', 3, 3);
select app.ensure_monthly_partitions('public.audit_log', 1, 3);

-- ---------------------------------------------------------------------------------------
-- Row-level security: enabled and forced on every table; one policy per operation and role.
-- Policies call the helpers through (select ...) so each runs once per statement.
-- ---------------------------------------------------------------------------------------
do $$
declare
  t regclass;
begin
  for t in
    select c.oid::regclass from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname in ('public', 'app') and c.relkind in ('r', 'p')
      and c.relname <> 'alembic_version'
  loop
    execute format('alter table %s enable row level security', t);
    execute format('alter table %s force row level security', t);
  end loop;
end
$$;

-- Alembic's bookkeeping is the owner's alone: RLS on, no grants, not forced so that the
-- owner (not a superuser on Supabase) can still record the revision.
alter table public.alembic_version enable row level security;

-- organizations: public directory; admins edit; super admins remove.
create policy organizations_select_anon on public.organizations for select to anon
  using (is_active);
create policy organizations_select_authenticated on public.organizations for select to authenticated
  using (is_active or id = any ((select app.member_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy organizations_insert_authenticated on public.organizations for insert to authenticated
  with check ((select auth.uid()) is not null);
create policy organizations_update_authenticated on public.organizations for update to authenticated
  using (id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()))
  with check (id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy organizations_delete_authenticated on public.organizations for delete to authenticated
  using ((select app.is_super_admin()));

-- organization_members: members see their organization's roster; admins manage it.
create policy organization_members_select_authenticated on public.organization_members
  for select to authenticated
  using (user_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
         or (select app.is_super_admin()));
create policy organization_members_insert_authenticated on public.organization_members
  for insert to authenticated
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy organization_members_update_authenticated on public.organization_members
  for update to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()))
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy organization_members_delete_authenticated on public.organization_members
  for delete to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));

-- user_profiles: one's own; staff see the people their organization deals with.
create policy user_profiles_select_authenticated on public.user_profiles for select to authenticated
  using (app.can_see_profile(user_id));
create policy user_profiles_insert_authenticated on public.user_profiles for insert to authenticated
  with check (user_id = (select auth.uid()));
create policy user_profiles_update_authenticated on public.user_profiles for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));

-- services: public while active; admins manage.
create policy services_select_anon on public.services for select to anon using (is_active);
create policy services_select_authenticated on public.services for select to authenticated
  using (is_active or organization_id = any ((select app.member_org_ids())::uuid[])
         or (select app.is_super_admin()));
create policy services_insert_authenticated on public.services for insert to authenticated
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy services_update_authenticated on public.services for update to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()))
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy services_delete_authenticated on public.services for delete to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));

-- working hours and closures are public schedule facts; admins manage them.
create policy service_working_hours_select_anon on public.service_working_hours for select to anon
  using (true);
create policy service_working_hours_select_authenticated on public.service_working_hours
  for select to authenticated using (true);
create policy service_working_hours_insert_authenticated on public.service_working_hours
  for insert to authenticated
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy service_working_hours_update_authenticated on public.service_working_hours
  for update to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()))
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy service_working_hours_delete_authenticated on public.service_working_hours
  for delete to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));

create policy service_closures_select_anon on public.service_closures for select to anon
  using (true);
create policy service_closures_select_authenticated on public.service_closures
  for select to authenticated using (true);
create policy service_closures_insert_authenticated on public.service_closures
  for insert to authenticated
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy service_closures_update_authenticated on public.service_closures
  for update to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()))
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy service_closures_delete_authenticated on public.service_closures
  for delete to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));

-- appointments: the customer's own, and their organization's staff. Never deleted by users:
-- cancelling is a status change.
create policy appointments_select_authenticated on public.appointments for select to authenticated
  using (customer_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
         or (select app.is_super_admin()));
create policy appointments_insert_authenticated on public.appointments for insert to authenticated
  with check (customer_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
              or (select app.is_super_admin()));
create policy appointments_update_authenticated on public.appointments for update to authenticated
  using (customer_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
         or (select app.is_super_admin()))
  with check (customer_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
              or (select app.is_super_admin()));

-- queues: public while active; admins manage.
create policy queues_select_anon on public.queues for select to anon using (is_active);
create policy queues_select_authenticated on public.queues for select to authenticated
  using (is_active or organization_id = any ((select app.member_org_ids())::uuid[])
         or (select app.is_super_admin()));
create policy queues_insert_authenticated on public.queues for insert to authenticated
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy queues_update_authenticated on public.queues for update to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()))
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy queues_delete_authenticated on public.queues for delete to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));

-- tickets: the holder's own, and the organization's staff.
create policy tickets_select_authenticated on public.tickets for select to authenticated
  using (user_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
         or (select app.is_super_admin()));
create policy tickets_insert_authenticated on public.tickets for insert to authenticated
  with check (user_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
              or (select app.is_super_admin()));
create policy tickets_update_authenticated on public.tickets for update to authenticated
  using (user_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
         or (select app.is_super_admin()))
  with check (user_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
              or (select app.is_super_admin()));

-- feedback: written by the customer; read by them and the organization.
create policy feedback_select_authenticated on public.feedback for select to authenticated
  using (customer_id = (select auth.uid()) or organization_id = any ((select app.member_org_ids())::uuid[])
         or (select app.is_super_admin()));
create policy feedback_insert_authenticated on public.feedback for insert to authenticated
  with check (customer_id = (select auth.uid()));

-- notifications: the recipient reads and marks them; staff may queue them for their organization.
create policy notifications_select_authenticated on public.notifications for select to authenticated
  using (user_id = (select auth.uid()) or (select app.is_super_admin()));
create policy notifications_insert_authenticated on public.notifications for insert to authenticated
  with check (organization_id = any ((select app.member_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy notifications_update_authenticated on public.notifications for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));

create policy notification_preferences_select_authenticated on public.notification_preferences
  for select to authenticated using (user_id = (select auth.uid()));
create policy notification_preferences_insert_authenticated on public.notification_preferences
  for insert to authenticated with check (user_id = (select auth.uid()));
create policy notification_preferences_update_authenticated on public.notification_preferences
  for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));

-- analytics_events: written by signed-in users (as themselves) and API keys (for their
-- organization); read by the organization's admins.
create policy analytics_events_select_authenticated on public.analytics_events
  for select to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy analytics_events_insert_authenticated on public.analytics_events
  for insert to authenticated
  with check (
    (user_id = (select auth.uid()) and user_id is not null)
    or (user_id is null and organization_id = any ((select app.member_org_ids())::uuid[]))
  );

-- api_keys and webhooks: admins only.
create policy api_keys_select_authenticated on public.api_keys for select to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy api_keys_insert_authenticated on public.api_keys for insert to authenticated
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy api_keys_update_authenticated on public.api_keys for update to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()))
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy api_keys_delete_authenticated on public.api_keys for delete to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));

create policy webhooks_select_authenticated on public.webhooks for select to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy webhooks_insert_authenticated on public.webhooks for insert to authenticated
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy webhooks_update_authenticated on public.webhooks for update to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()))
  with check (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));
create policy webhooks_delete_authenticated on public.webhooks for delete to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));

create policy webhook_deliveries_select_authenticated on public.webhook_deliveries
  for select to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));

-- idempotency keys belong to whoever sent them.
create policy idempotency_keys_select_authenticated on public.idempotency_keys
  for select to authenticated using (principal = (select app.principal_id()));
create policy idempotency_keys_insert_authenticated on public.idempotency_keys
  for insert to authenticated with check (principal = (select app.principal_id()));
create policy idempotency_keys_update_authenticated on public.idempotency_keys
  for update to authenticated
  using (principal = (select app.principal_id())) with check (principal = (select app.principal_id()));

-- audit_log: read by the organization's admins; written only by the audit trigger.
create policy audit_log_select_authenticated on public.audit_log for select to authenticated
  using (organization_id = any ((select app.admin_org_ids())::uuid[]) or (select app.is_super_admin()));

-- platform admins may list themselves; the table is managed by the operator (CLI).
create policy platform_admins_select_authenticated on app.platform_admins for select to authenticated
  using (user_id = (select auth.uid()) or (select app.is_super_admin()));

-- ---------------------------------------------------------------------------------------
-- Table privileges: only the operations a policy exists for. RLS decides the rows.
-- ---------------------------------------------------------------------------------------
grant select on public.organizations, public.services, public.service_working_hours,
  public.service_closures, public.queues to anon;

grant select, insert, update, delete on public.organizations, public.organization_members,
  public.services, public.service_working_hours, public.service_closures, public.queues,
  public.api_keys, public.webhooks to authenticated;
grant select, insert, update on public.user_profiles, public.appointments, public.tickets,
  public.notifications, public.notification_preferences, public.idempotency_keys to authenticated;
grant select, insert on public.feedback, public.analytics_events to authenticated;
grant select on public.webhook_deliveries, public.audit_log, app.platform_admins to authenticated;
-- The key hash is never readable through the API role, not even by admins.
revoke select on public.api_keys from authenticated;
grant select (id, organization_id, name, role, prefix, created_by, created_at, last_used_at,
  expires_at, revoked_at) on public.api_keys to authenticated;

grant all on all tables in schema public to service_role;
grant all on all tables in schema app to service_role;
grant usage on all sequences in schema public to service_role;

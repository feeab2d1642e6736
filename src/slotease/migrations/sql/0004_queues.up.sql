-- Queues: race-free daily numbers, the ticket status rules for every writer, grace-period
-- no-shows, appointment check-in, and the personal-data-free public view of a line.

-- ---------------------------------------------------------------------------------------
-- Estimate bookkeeping. `estimated_wait_minutes` is the wait quoted when the ticket started
-- waiting; `waiting_since` is that moment (a checked-in appointment stands in line at its
-- booked time but starts waiting when it checks in); `actual_wait_minutes` is set when the
-- ticket is called, so quoted and actual can be compared.
-- ---------------------------------------------------------------------------------------
alter table public.tickets
  add column waiting_since timestamptz not null default now(),
  add column actual_wait_minutes double precision,
  add column transferred_to uuid;

-- The grace-period sweep reads called tickets of a queue by call time.
create index tickets_called_idx on public.tickets (queue_id, called_at) where status = 'called';
-- Service-time statistics read the recently finished tickets of a queue.
create index tickets_served_idx on public.tickets (queue_id, finished_at desc)
  include (serving_at) where status = 'served';
create index tickets_recent_calls_idx on public.tickets (queue_id, called_at desc)
  include (estimated_wait_minutes, actual_wait_minutes) where actual_wait_minutes is not null;

-- ---------------------------------------------------------------------------------------
-- Daily numbers: one counter row per queue and local service date. The upsert takes the
-- row lock, so concurrent joins of one queue get consecutive numbers and never the same.
-- ---------------------------------------------------------------------------------------
create table public.queue_counters (
  organization_id uuid not null,
  queue_id uuid not null,
  service_date date not null,
  last_number integer not null check (last_number > 0),
  primary key (organization_id, queue_id, service_date),
  foreign key (queue_id, organization_id)
    references public.queues (id, organization_id) on delete cascade
);
create index queue_counters_queue_idx on public.queue_counters (queue_id, service_date);

alter table public.queue_counters enable row level security;
alter table public.queue_counters force row level security;

-- Counters are written only by app.next_ticket_number(); staff may read them.
create policy queue_counters_select_authenticated on public.queue_counters
  for select to authenticated
  using (organization_id = any ((select app.member_org_ids())::uuid[]) or (select app.is_super_admin()));
grant select on public.queue_counters to authenticated;
grant all on public.queue_counters to service_role;

-- Not audited: a counter moves with every ticket, and the ticket's own audit row says so.

-- The next number of a queue for today in its organization's timezone. Security definer: a
-- customer joining remotely may not write counters itself. Only visible queues count.
create function app.next_ticket_number(queue uuid, out service_date date, out number integer)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  org uuid;
  local_day date;
begin
  select q.organization_id, (now() at time zone o.timezone)::date into org, local_day
  from public.queues q
  join public.organizations o on o.id = q.organization_id
  where q.id = queue and (q.is_active or app.is_org_member(q.organization_id));
  if org is null then
    raise exception 'no such queue' using errcode = 'SEQNF', hint = 'queue_not_found';
  end if;
  insert into public.queue_counters as c (organization_id, queue_id, service_date, last_number)
  values (org, queue, local_day, 1)
  -- Named constraint: the OUT parameter service_date would make a column list ambiguous.
  on conflict on constraint queue_counters_pkey
    do update set last_number = c.last_number + 1
  returning c.service_date, c.last_number into service_date, number;
end
$$;
revoke execute on function app.next_ticket_number(uuid) from public;
grant execute on function app.next_ticket_number(uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Ticket status rules: waiting -> called -> serving -> served; waiting|called -> no_show |
-- cancelled; no_show -> waiting (requeue, at the back of the line). The timestamps follow
-- the status, whoever writes. A customer acting through the API (current_user is then
-- `authenticated`; security definer functions run as their owner) may only take a plain
-- ticket for themselves and cancel it.
-- ---------------------------------------------------------------------------------------
create function app.check_ticket_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
declare
  as_customer boolean := current_user = 'authenticated'
    and not app.is_org_member(new.organization_id);
begin
  if tg_op = 'INSERT' then
    -- Only the system (service_role) may write a ticket's history as it was, such as an
    -- import from another system or the demo data; everyone else starts in the line.
    if new.status <> 'waiting' and current_user <> 'service_role' then
      raise exception 'a ticket starts waiting' using errcode = 'SETKT', hint = 'invalid_transition';
    end if;
    if as_customer and (new.priority <> 0 or new.counter is not null) then
      raise exception 'only the organization may set a priority or a counter'
        using errcode = '42501', hint = 'customer_fields';
    end if;
    return new;
  end if;

  if new.status is distinct from old.status then
    if not (
      (old.status = 'waiting' and new.status in ('called', 'no_show', 'cancelled'))
      or (old.status = 'called' and new.status in ('serving', 'no_show', 'cancelled'))
      or (old.status = 'serving' and new.status = 'served')
      or (old.status = 'no_show' and new.status = 'waiting')
    ) then
      raise exception 'a ticket cannot go from % to %', old.status, new.status
        using errcode = 'SETKT', hint = 'invalid_transition';
    end if;
    case new.status
      when 'called' then
        new.called_at := now();
        new.actual_wait_minutes := extract(epoch from now() - old.waiting_since) / 60;
      when 'serving' then
        new.serving_at := now();
      when 'waiting' then
        new.line_position_at := now();
        new.waiting_since := now();
        new.counter := null;
        new.finished_at := null;
        new.estimated_wait_minutes := null;
      else
        new.finished_at := now();
    end case;
  end if;

  if as_customer and (
    new.status not in (old.status, 'cancelled')
    or (new.id, new.organization_id, new.queue_id, new.user_id, new.appointment_id,
        new.service_date, new.number, new.priority, new.counter, new.line_position_at,
        new.transferred_to)
       is distinct from
       (old.id, old.organization_id, old.queue_id, old.user_id, old.appointment_id,
        old.service_date, old.number, old.priority, old.counter, old.line_position_at,
        old.transferred_to)
  ) then
    raise exception 'a customer may only cancel their ticket'
      using errcode = '42501', hint = 'customer_fields';
  end if;
  return new;
end
$$;
revoke execute on function app.check_ticket_change() from public;

create trigger tickets_change_rules before insert or update on public.tickets
  for each row execute function app.check_ticket_change();

-- ---------------------------------------------------------------------------------------
-- Grace period: a called ticket not started within its queue's grace_minutes becomes a
-- no-show, and goes back to the end of the line when the queue requeues no-shows. Security
-- definer so that any request looking at a queue can apply the rule; the rows are claimed
-- with SKIP LOCKED, so concurrent sweeps never handle one ticket twice.
-- ---------------------------------------------------------------------------------------
create function app.expire_called_tickets(queue uuid default null)
  returns table (id uuid, queue_id uuid, organization_id uuid, user_id uuid, number integer,
                 prefix text, service_date date, status text, counter text, priority smallint,
                 appointment_id uuid)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  expired uuid[];
begin
  select coalesce(array_agg(t.id), '{}') into expired
  from (
    select t.id
    from public.tickets t
    join public.queues q on q.id = t.queue_id and q.organization_id = t.organization_id
    where t.status = 'called'
      and (queue is null or t.queue_id = queue)
      and t.called_at < now() - make_interval(
        mins => coalesce((q.settings ->> 'grace_minutes')::integer, 5))
    for update of t skip locked
  ) t;
  if cardinality(expired) = 0 then
    return;
  end if;

  update public.tickets t set status = 'no_show' where t.id = any (expired);
  update public.tickets t set status = 'waiting'
  from public.queues q
  where t.id = any (expired)
    and q.id = t.queue_id and q.organization_id = t.organization_id
    and coalesce((q.settings ->> 'requeue_no_show')::boolean, true);

  return query
    select t.id, t.queue_id, t.organization_id, t.user_id, t.number, q.prefix, t.service_date,
           t.status, t.counter, t.priority, t.appointment_id
    from public.tickets t
    join public.queues q on q.id = t.queue_id and q.organization_id = t.organization_id
    where t.id = any (expired);
end
$$;
revoke execute on function app.expire_called_tickets(uuid) from public;
grant execute on function app.expire_called_tickets(uuid) to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- Check-in of a booked appointment into a queue of its organization. Staff may check in at
-- any time; the customer only inside the queue's window around the booked time. The
-- appointment rules (0003) let only the organization change a status, so for a customer's
-- own check-in the change is made with the claims' role set to service_role (same user id,
-- so the audit log still names them) for this one statement.
-- ---------------------------------------------------------------------------------------
create function app.check_in_appointment(appointment uuid, queue uuid)
  returns table (id uuid, starts_at timestamptz, customer_id uuid, organization_id uuid)
  language plpgsql volatile security definer
  set search_path = ''
  as $$
declare
  a record;
  q record;
  staff boolean;
  claims text := current_setting('request.jwt.claims', true);
begin
  select x.id, x.starts_at, x.customer_id, x.organization_id, x.service_id, x.status into a
  from public.appointments x
  where x.id = appointment
    and (x.customer_id = auth.uid() or app.is_org_member(x.organization_id))
  for update;
  if a.id is null then
    return;
  end if;
  select y.organization_id, y.service_id, y.settings into q from public.queues y where y.id = queue;
  staff := app.is_org_member(a.organization_id);
  if q.organization_id is distinct from a.organization_id
     or (q.service_id is not null and q.service_id <> a.service_id) then
    raise exception 'the appointment is not for this queue'
      using errcode = 'SECHK', hint = 'other_queue';
  end if;
  if a.status <> 'booked' then
    raise exception 'only a booked appointment can check in'
      using errcode = 'SECHK', hint = 'not_booked';
  end if;
  if not staff and now() not between
       a.starts_at - make_interval(mins => coalesce((q.settings #>> '{check_in_window_minutes,before}')::integer, 30))
       and a.starts_at + make_interval(mins => coalesce((q.settings #>> '{check_in_window_minutes,after}')::integer, 15)) then
    raise exception 'check-in is open only around the appointment time'
      using errcode = 'SECHK', hint = 'outside_window';
  end if;

  if not staff then
    perform set_config('request.jwt.claims',
      (coalesce(nullif(claims, ''), '{}')::jsonb || '{"role": "service_role"}')::text, true);
  end if;
  update public.appointments x set status = 'checked_in'
  where x.id = a.id and x.starts_at = a.starts_at and x.organization_id = a.organization_id;
  if not staff then
    perform set_config('request.jwt.claims', coalesce(claims, ''), true);
  end if;

  return query select a.id, a.starts_at, a.customer_id, a.organization_id;
end
$$;
revoke execute on function app.check_in_appointment(uuid, uuid) from public;
grant execute on function app.check_in_appointment(uuid, uuid) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------
-- What anyone may know about a visible queue: counts, who is being served (numbers and
-- counters only), service durations and estimate errors. Nothing that names a person.
-- ---------------------------------------------------------------------------------------
create function app.queue_public_state(queue uuid)
  returns table (waiting_count integer, now_serving jsonb, service_minutes double precision[],
                 service_hours integer[], active_counters integer, quoted_minutes integer[],
                 actual_minutes double precision[], default_service_minutes integer,
                 local_hour integer)
  language plpgsql stable security definer
  set search_path = ''
  as $$
declare
  q record;
begin
  select y.id, y.prefix, y.organization_id, o.timezone, s.duration_minutes into q
  from public.queues y
  join public.organizations o on o.id = y.organization_id
  left join public.services s on s.id = y.service_id and s.organization_id = y.organization_id
  where y.id = queue and (y.is_active or app.is_org_member(y.organization_id));
  if q.id is null then
    return;
  end if;
  return query
  select
    (select count(*)::integer from public.tickets t where t.queue_id = queue and t.status = 'waiting'),
    (select coalesce(jsonb_agg(jsonb_build_object(
              'number', q.prefix || '-' || lpad(t.number::text, greatest(3, length(t.number::text)), '0'),
              'counter', t.counter)
              order by t.called_at), '[]')
     from public.tickets t where t.queue_id = queue and t.status in ('called', 'serving')),
    coalesce(array_agg(r.minutes order by r.finished_at desc), '{}'),
    coalesce(array_agg(r.hour order by r.finished_at desc), '{}'),
    (select count(distinct t.counter)::integer from public.tickets t
     where t.queue_id = queue and t.counter is not null
       and t.status in ('called', 'serving') and t.called_at > now() - interval '30 minutes'),
    (select coalesce(array_agg(c.estimated_wait_minutes order by c.called_at desc), '{}')
     from (select t.estimated_wait_minutes, t.called_at from public.tickets t
           where t.queue_id = queue and t.actual_wait_minutes is not null
             and t.estimated_wait_minutes is not null
           order by t.called_at desc limit 50) c),
    (select coalesce(array_agg(c.actual_wait_minutes order by c.called_at desc), '{}')
     from (select t.actual_wait_minutes, t.called_at from public.tickets t
           where t.queue_id = queue and t.actual_wait_minutes is not null
             and t.estimated_wait_minutes is not null
           order by t.called_at desc limit 50) c),
    q.duration_minutes,
    extract(hour from now() at time zone q.timezone)::integer
  from (
    select t.finished_at,
           (extract(epoch from t.finished_at - t.serving_at) / 60)::double precision as minutes,
           extract(hour from t.serving_at at time zone q.timezone)::integer as hour
    from public.tickets t
    where t.queue_id = queue and t.status = 'served' and t.serving_at is not null
    order by t.finished_at desc
    limit 200
  ) r;
end
$$;
revoke execute on function app.queue_public_state(uuid) from public;
grant execute on function app.queue_public_state(uuid) to anon, authenticated, service_role;

-- The line of a queue: every waiting ticket with its position, in one window-function pass.
-- The holder is named only to the organization's staff and to the holder themselves.
create function app.queue_line(queue uuid)
  returns table (id uuid, user_id uuid, "position" integer)
  language plpgsql stable security definer
  set search_path = ''
  as $$
declare
  staff boolean;
begin
  select app.is_org_member(y.organization_id) into staff
  from public.queues y
  where y.id = queue and (y.is_active or app.is_org_member(y.organization_id));
  if staff is null then
    return;
  end if;
  return query
    select t.id,
           case when staff or t.user_id = auth.uid() then t.user_id end,
           (row_number() over (order by t.priority desc, t.line_position_at, t.id))::integer
    from public.tickets t
    where t.queue_id = queue and t.status = 'waiting';
end
$$;
revoke execute on function app.queue_line(uuid) from public;
grant execute on function app.queue_line(uuid) to anon, authenticated, service_role;

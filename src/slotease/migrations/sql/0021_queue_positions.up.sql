set local lock_timeout = '5s';
-- Positions without numbering the line: a change of a queue reads the places of the few
-- tickets it concerns (and the hub those of the tickets someone follows), never every waiting
-- ticket. Both functions are security definer for the reason app.queue_line is: a customer
-- sees only their own ticket rows, and a position counts everybody's.

-- The position of each waiting ticket of `ids`, in a queue the caller may see: one count of
-- the tickets ahead on tickets_waiting_idx (a range of the index, so the cost is the position,
-- not the line); for many tickets one window pass over each line they stand in is cheaper.
-- The holder is named only as app.queue_line names them.
create function app.ticket_positions(ids uuid[])
  returns table (id uuid, queue_id uuid, organization_id uuid, user_id uuid, "position" integer)
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  if cardinality(ids) <= 16 then
    return query
      select t.id, t.queue_id, t.organization_id,
             case when app.is_org_member(t.organization_id) or t.user_id = auth.uid()
                  then t.user_id end,
             (1 + (select count(*) from public.tickets w
                   where w.queue_id = t.queue_id and w.status = 'waiting'
                     and w.priority > t.priority)
                + (select count(*) from public.tickets w
                   where w.queue_id = t.queue_id and w.status = 'waiting'
                     and w.priority = t.priority
                     and (w.line_position_at, w.id) < (t.line_position_at, t.id)))::integer
      from public.tickets t
      join public.queues q on q.id = t.queue_id and q.organization_id = t.organization_id
      where t.id = any (ids) and t.status = 'waiting'
        and (q.is_active or app.is_org_member(q.organization_id));
    return;
  end if;
  return query
    select l.id, l.queue_id, l.organization_id,
           case when app.is_org_member(l.organization_id) or l.user_id = auth.uid()
                then l.user_id end,
           l.position::integer
    from (
      select t.id, t.queue_id, t.organization_id, t.user_id,
             row_number() over (partition by t.queue_id
                                order by t.priority desc, t.line_position_at, t.id) as position
      from public.tickets t
      where t.status = 'waiting'
        and t.queue_id in (select x.queue_id from public.tickets x where x.id = any (ids))
    ) l
    join public.queues q on q.id = l.queue_id and q.organization_id = l.organization_id
    where l.id = any (ids) and (q.is_active or app.is_org_member(q.organization_id));
end
$$;
revoke execute on function app.ticket_positions(uuid[]) from public;
grant execute on function app.ticket_positions(uuid[]) to anon, authenticated, service_role;

-- Who is being served, read by every change of a queue: the few called and serving tickets,
-- in call order, without reading the day's other tickets (tickets_queue_day_idx has the date
-- between the queue and the status).
create index tickets_now_serving_idx on public.tickets (queue_id, called_at)
  where status in ('called', 'serving');

-- What a change announces on the queue's board: how many wait and who is being served, the
-- first two fields of app.queue_public_state without the service history behind estimates.
create function app.queue_summary(queue uuid)
  returns table (waiting_count integer, now_serving jsonb)
  language sql stable security definer
  set search_path = ''
  as $$
    select
      (select count(*)::integer from public.tickets t
       where t.queue_id = y.id and t.status = 'waiting'),
      (select coalesce(jsonb_agg(jsonb_build_object(
                'number', y.prefix || '-' || lpad(t.number::text, greatest(3, length(t.number::text)), '0'),
                'counter', t.counter)
                order by t.called_at), '[]')
       from public.tickets t where t.queue_id = y.id and t.status in ('called', 'serving'))
    from public.queues y
    where y.id = queue and (y.is_active or app.is_org_member(y.organization_id))
  $$;
revoke execute on function app.queue_summary(uuid) from public;
grant execute on function app.queue_summary(uuid) to anon, authenticated, service_role;

-- The waiting ticket at `at_position` of a visible queue's line when someone holds it (its id
-- only: positions are no secret, holders are; a walk-in without an account is told nothing):
-- the queue alert asks it once per change that moved that place, reading the line's index as
-- far as the position.
create function app.ticket_at_position(queue uuid, at_position integer) returns uuid
  language sql stable security definer
  set search_path = ''
  as $$
    select case when t.user_id is not null then t.id end
    from public.tickets t
    where t.queue_id = queue and t.status = 'waiting'
      and exists (select from public.queues y
                  where y.id = queue and (y.is_active or app.is_org_member(y.organization_id)))
    order by t.priority desc, t.line_position_at, t.id
    offset greatest(at_position, 1) - 1 limit 1
  $$;
revoke execute on function app.ticket_at_position(uuid, integer) from public;
grant execute on function app.ticket_at_position(uuid, integer) to anon, authenticated, service_role;

-- Hardening of realtime access checks and other review findings.

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

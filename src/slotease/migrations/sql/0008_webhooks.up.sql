-- Webhooks: whether an organization listens to an event, answerable by any request.
-- Every domain event of a request asks this before anything is written; most organizations
-- have no webhook, and busy queues emit an event per waiting ticket. The answer says only
-- that an event name is subscribed to, never where it goes or with which secret.
create function app.webhook_subscribed(org uuid, event_name text) returns boolean
  language plpgsql stable security definer
  set search_path = ''
  as $$
begin
  return exists (
    select 1 from public.webhooks w
    where w.organization_id = org and w.is_active and w.events @> array[event_name]
  );
end
$$;
revoke execute on function app.webhook_subscribed(uuid, text) from public;
grant execute on function app.webhook_subscribed(uuid, text) to anon, authenticated, service_role;

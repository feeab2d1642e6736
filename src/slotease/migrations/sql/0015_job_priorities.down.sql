-- Undo 0015.
drop function app.record_in_app(uuid, text, text, text, text);
drop function app.in_app_to_deliver(uuid[]);
drop function app.enqueue_job(text, text, jsonb, timestamptz, text, text, integer);
alter function app.enqueue_job_checked(text, text, jsonb, timestamptz, text, text)
  rename to enqueue_job;
grant execute on function app.enqueue_job(text, text, jsonb, timestamptz, text, text)
  to anon, authenticated, service_role;

drop function if exists app.queue_summary(uuid);
drop function if exists app.ticket_at_position(uuid, integer);
drop function if exists app.ticket_positions(uuid[]);
drop index if exists public.tickets_now_serving_idx;

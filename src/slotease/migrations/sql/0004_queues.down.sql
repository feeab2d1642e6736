-- Undo 0004.
drop function if exists app.queue_line(uuid);
drop function if exists app.queue_public_state(uuid);
drop function if exists app.check_in_appointment(uuid, uuid);
drop function if exists app.expire_called_tickets(uuid);
drop trigger if exists tickets_change_rules on public.tickets;
drop function if exists app.check_ticket_change();
drop function if exists app.next_ticket_number(uuid);
drop table if exists public.queue_counters;
drop index if exists public.tickets_recent_calls_idx;
drop index if exists public.tickets_served_idx;
drop index if exists public.tickets_called_idx;
alter table public.tickets
  drop column if exists transferred_to,
  drop column if exists actual_wait_minutes,
  drop column if exists waiting_since;

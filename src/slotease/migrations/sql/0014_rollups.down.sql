-- Undo 0014.
drop trigger if exists organizations_daily_rollups on public.organizations;
drop function if exists app.rebuild_daily_rollups_of_organization();
drop function if exists app.rebuild_daily_rollups(uuid);
drop trigger if exists tickets_daily_queue on public.tickets;
drop function if exists app.track_daily_queue();
drop trigger if exists feedback_daily_ratings on public.feedback;
drop function if exists app.track_daily_ratings();
drop trigger if exists appointments_daily_service on public.appointments;
drop function if exists app.track_daily_service();
drop function if exists app.change_daily_service(text, uuid, uuid, date, text, numeric, integer,
  uuid, uuid, date, text, numeric, integer);
drop function if exists app.signs_in_key_order(text, text, text);
drop function if exists app.organization_day(uuid, timestamptz);
drop function if exists app.add_daily_queue(uuid, uuid, date, integer, text, double precision,
  integer, timestamptz, timestamptz);
drop function if exists app.add_daily_service(uuid, uuid, date, integer, text, numeric, integer);
drop table if exists public.analytics_daily_queue;
drop table if exists public.analytics_daily_service;

-- Undo 0003.
drop trigger if exists feedback_rules on public.feedback;
drop function if exists app.check_feedback();
drop function if exists app.service_rating_stats(uuid);
drop function if exists app.busy_intervals(uuid, timestamptz, timestamptz);
drop function if exists app.rebuild_slot_usage();
drop trigger if exists appointments_slot_usage on public.appointments;
drop function if exists app.track_slot_usage();
drop table if exists public.appointment_slot_usage;
drop trigger if exists appointments_change_rules on public.appointments;
drop function if exists app.check_appointment_change();
drop trigger if exists appointments_capacity on public.appointments;
drop function if exists app.enforce_capacity();
alter table public.appointments drop constraint if exists appointments_length_check;

-- Undo 0005.
drop function if exists app.accept_waitlist_offer(uuid);
drop function if exists app.expire_waitlist_offers();
drop trigger if exists services_waitlist on public.services;
drop function if exists app.release_service_places();
drop trigger if exists appointments_waitlist on public.appointments;
drop function if exists app.release_waitlist_places();
drop table if exists public.waitlist_entries;
drop function if exists app.pass_on_left_offer();
drop function if exists app.offer_waitlist_places(uuid, timestamptz, timestamptz);
drop function if exists app.waitlist_ahead(uuid, timestamptz, timestamptz, uuid);
drop function if exists app.places_taken(uuid, timestamptz, timestamptz);
drop function if exists app.lock_service_places(uuid);
drop function if exists app.prepare_waitlist_entry();
drop function if exists app.calendar_feed_owner(text);
drop table if exists public.calendar_feed_tokens;
drop trigger if exists appointments_revision on public.appointments;
drop function if exists app.count_appointment_revision();
alter table public.appointments drop column if exists revision;

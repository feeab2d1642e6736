drop function app.availability_days(uuid, date, date);
drop trigger appointments_availability_days_insert on public.appointments;
drop trigger appointments_availability_days_update on public.appointments;
drop trigger appointments_availability_days_delete on public.appointments;
drop function app.bump_availability_days();
drop table public.availability_days;
create trigger appointments_availability_insert after insert on public.appointments
  referencing new table as new_rows
  for each statement execute function app.bump_availability_of_rows();
create trigger appointments_availability_update after update on public.appointments
  referencing old table as old_rows new table as new_rows
  for each statement execute function app.bump_availability_of_rows();
create trigger appointments_availability_delete after delete on public.appointments
  referencing old table as old_rows
  for each statement execute function app.bump_availability_of_rows();

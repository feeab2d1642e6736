drop index if exists public.organizations_directory_idx;
drop function if exists app.directory_candidates(tsquery, box);
drop function if exists app.user_id_by_email(text);

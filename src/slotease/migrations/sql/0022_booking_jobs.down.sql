drop function if exists app.enqueue_jobs(jsonb);

-- Undo 0012.

-- Realtime
drop function app.realtime_topic_access(text[], uuid[]);

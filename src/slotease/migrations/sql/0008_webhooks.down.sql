-- Undo 0008.
drop function if exists app.webhook_subscribed(uuid, text);

-- $1 step ids: their outcome is recorded, so the locks they held are free.
DELETE FROM resource_lock
WHERE holder_kind = 'step' AND holder_id = ANY ($1::text[])

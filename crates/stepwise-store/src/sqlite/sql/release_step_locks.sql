-- ?1 JSON array of step ids (hyphenated text, as holder ids): their outcome is
-- recorded, so the locks they held are free.
DELETE FROM resource_lock
WHERE holder_kind = 'step' AND holder_id IN (SELECT value FROM json_each(?1))

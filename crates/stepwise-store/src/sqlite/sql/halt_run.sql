-- ?1 run id, ?2 reason ('failed'), ?3 error. The first reason wins.
UPDATE run SET halt = coalesce(halt, ?2), error = coalesce(error, ?3) WHERE id = ?1

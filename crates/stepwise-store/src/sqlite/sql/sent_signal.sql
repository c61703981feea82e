-- ?1 run id, ?2 sender's id: the signal already delivered with that id.
SELECT seq, name, consumed_by FROM signal WHERE run_id = ?1 AND sender_id = ?2
